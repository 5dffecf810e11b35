package docstest

import (
	"go/parser"
	"go/token"
	"reflect"
	"slices"
	"testing"
)

func TestSlug(t *testing.T) {
	tests := []struct{ heading, want string }{
		{"Values", "values"},
		{"The CRI operator: `container_cri`", "the-cri-operator-container_cri"},
		{"`fargate-otel inject` and `fargate-otel render`", "fargate-otel-inject-and-fargate-otel-render"},
		{"The fleet agent and live config", "the-fleet-agent-and-live-config"},
		{"Why `get` on ConfigMaps (polled) and not a watch", "why-get-on-configmaps-polled-and-not-a-watch"},
		{"Mode `direct`", "mode-direct"},
		{"A [link](x.md) in it", "a-link-in-it"},
		{"Upgrades, 0.1 → 0.2", "upgrades-01--02"},
		{"**Bold** and *em*", "bold-and-em"},
	}
	for _, tt := range tests {
		if got := Slug(tt.heading); got != tt.want {
			t.Errorf("Slug(%q) = %q, want %q", tt.heading, got, tt.want)
		}
	}
}

func TestAnchors(t *testing.T) {
	text := "# Title\n\n## Usage\n\n```sh\n# not a heading\n```\n\n## Usage\n\n<a name=\"custom\"></a>\n### `code` here\n"
	got := Anchors(text)
	for _, want := range []string{"title", "usage", "usage-1", "custom", "code-here"} {
		if !got[want] {
			t.Errorf("anchor %q missing from %v", want, got)
		}
	}
	if got["not-a-heading"] {
		t.Errorf("a comment in a code block was taken for a heading: %v", got)
	}
}

func TestLinks(t *testing.T) {
	text := "See [the page](docs/a.md#b) and ![img](pic.svg \"title\").\n" +
		"`[not](a-link.md)` in code, and\n" +
		"```\n[nor](this.md)\n```\n" +
		"[ref]: ../up.md\n" +
		"<img src=\"x.png\"> and [site](https://example.com)\n"
	var got []string
	for _, l := range Links(text) {
		got = append(got, l.Target)
	}
	slices.Sort(got)
	want := []string{"../up.md", "docs/a.md#b", "https://example.com", "pic.svg", "x.png"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Links = %q, want %q", got, want)
	}
}

func TestPhrase(t *testing.T) {
	tests := []struct{ text, want string }{
		{"not injected: " + Hole + ". The API server would reject the pod", "The API server would reject the pod"},
		{"container " + Hole + " is not captured: it already mounts " + Hole, "is not captured: it already mounts"},
		{Hole + " ignored: " + Hole, ""}, // nothing stable to look for
		{"  spread over\n\tlines;  ", "spread over lines"},
	}
	for _, tt := range tests {
		if got := (Message{Text: tt.text}).Phrase(); got != tt.want {
			t.Errorf("Phrase(%q) = %q, want %q", tt.text, got, tt.want)
		}
	}
}

// TestMessagesRules checks each rule on a small source.
func TestMessagesRules(t *testing.T) {
	src := `package p
import "fmt"
const (
	ReasonA Kind = "reason-a"
	CheckX = "check x"
)
func f(p *plan, key string) string {
	p.warnf("the pod has %d containers; raise the limit", 3)
	warn(key, "is not a size; write a size such as 10Mi")
	msg := fmt.Sprintf("not injected: %s is missing from the pod", key)
	warn = "assigned text of a warning"
	d.add(CheckX, Fail, "detail of a failed check", "fix")
	d.add(CheckX, OK, "detail of a passing check", "")
	refuse(w, r, res, 429, "rate_limited", "pod "+key+" exceeds the rate")
	reason := "follow_limit_pod"
	return msg
}
func advice(err error) string { return "what to do about it, in full" }
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "p.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	srcs := []Source{{Rel: "p.go", Fset: fset, File: f}}
	msgs := Messages(srcs, Rules{
		Calls:    []string{"warnf", "warn"},
		CallArg:  map[string]int{"add": 2, "refuse": 5},
		Prefixes: []string{"not injected"},
		Assigned: []string{"warn"},
		Returned: []string{"advice"},
		SkipWhenArg: map[string]struct {
			Arg    int
			Idents []string
		}{"add": {Arg: 1, Idents: []string{"OK"}}},
	})
	var phrases []string
	for _, m := range msgs {
		phrases = append(phrases, m.Phrase())
	}
	for _, want := range []string{
		"containers; raise the limit", "is not a size; write a size such as 10Mi",
		"is missing from the pod", "assigned text of a warning", "detail of a failed check", "exceeds the rate", "what to do about it, in full",
	} {
		if !slices.Contains(phrases, want) {
			t.Errorf("phrase %q not found in %q", want, phrases)
		}
	}
	if slices.Contains(phrases, "detail of a passing check") {
		t.Errorf("a passing check's detail was taken for a message: %q", phrases)
	}
	if got := TypedConsts(srcs, "Kind"); len(got) != 1 || got[0].Value != "reason-a" {
		t.Errorf("TypedConsts = %v", got)
	}
	if got := PrefixedConsts(srcs, "Check"); len(got) != 1 || got[0].Value != "check x" {
		t.Errorf("PrefixedConsts = %v", got)
	}
	var labels []string
	for _, id := range CallLabels(srcs, "refuse", "reason") {
		labels = append(labels, id.Value)
	}
	if !reflect.DeepEqual(labels, []string{"rate_limited", "follow_limit_pod"}) {
		t.Errorf("CallLabels = %q", labels)
	}
}

func TestTableRowProblems(t *testing.T) {
	text := "| a | b |\n|---|---|\n| `x\\|y` | ok |\n| `x|y` | broken |\n\n```\n| in | a | fence |\n```\n| c |\n|---|\n"
	if got := TableRowProblems(text); !reflect.DeepEqual(got, []int{4}) {
		t.Errorf("TableRowProblems = %v, want [4]", got)
	}
}
