package docstest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// troubleshooting is the page that explains every message below.
const troubleshooting = "docs/troubleshooting.md"

// component is one part of the project whose messages the page explains:
// where its code is, which of its texts are messages for people, and which
// stable labels it emits.
type component struct {
	name  string
	dirs  []string
	rules Rules
	// ids are labels the page must name in a code span.
	ids func(srcs []Source) []ID
}

// components is what the page covers. A new kind of message (a new call
// that warns, a new Event) belongs here too.
var components = []component{
	{
		name: "injector: admission warnings",
		dirs: []string{"injector", "injector/annotations", "injector/webhook", "injector/manifest"},
		rules: Rules{
			Calls:    []string{"warnf", "warn"},
			Prefixes: []string{"not injected", "fargate-otel: ", "container " + Hole + " ", "annotation " + Hole + " "},
			Assigned: []string{"warn"},
		},
		ids: func(srcs []Source) []ID {
			return append(TypedConsts(srcs, "SkipReason"), EventReasons(srcs)...)
		},
	},
	{
		name: "injector: image look-ups",
		dirs: []string{"injector/entrypoint"},
		ids:  func(srcs []Source) []ID { return TypedConsts(srcs, "Reason") },
	},
	{
		name: "injector: certificates and controllers",
		dirs: []string{"cmd/fargate-otel-injector", "injector/certs", "nodeproxy/controllers"},
		rules: Rules{
			Calls:    []string{"Error"},
			Prefixes: []string{"the Secret "},
		},
	},
	{
		name: "fargate-otel inject",
		dirs: []string{"cmd/fargate-otel"},
		rules: Rules{
			Prefixes: []string{"warning: ", "hint: ", "  hint: ", "--strict: "},
		},
	},
	{
		name: "fargate-otel doctor",
		dirs: []string{"nodeproxy/doctor"},
		rules: Rules{
			CallArg: map[string]int{"add": 2},
			SkipWhenArg: map[string]struct {
				Arg    int
				Idents []string
			}{"add": {Arg: 1, Idents: []string{"OK", "Skip"}}},
			Assigned: []string{"what", "detail"},
		},
		ids: func(srcs []Source) []ID { return PrefixedConsts(srcs, "Check") },
	},
	{
		name: "collector sidecar",
		dirs: []string{"cmd/fargate-otel-collector", "cmd/fargate-otel-collector/internal/..."},
		rules: Rules{
			Calls:    []string{"Warn", "Error"},
			Returned: []string{"advice"},
		},
	},
	{
		name: "wrapper and follower",
		dirs: []string{"tee/...", "logrotate", "cmd/fargate-otel-tee/..."},
		rules: Rules{
			Calls:    []string{"Warn", "Error", "say"},
			Prefixes: []string{"fargate-otel-tee: "},
			Assigned: []string{"text", "notice"},
			Returned: []string{"advice"},
		},
	},
	{
		name: "node proxy",
		dirs: []string{"nodeproxy", "cmd/fargate-otel-nodeproxy"},
		rules: Rules{
			CallArg: map[string]int{"refuse": 5},
		},
		ids: func(srcs []Source) []ID { return CallLabels(srcs, "refuse", "reason") },
	},
	{
		name: "fleet server",
		dirs: []string{"fleet/...", "cmd/fargate-otel-fleet"},
		rules: Rules{
			Calls:   []string{"Error"},
			CallArg: map[string]int{"Invalid": 3},
			Keys:    []string{"Note"},
		},
		ids: func(srcs []Source) []ID {
			return append(CallLabels(srcs, "refuse", "reason"), EventReasons(srcs)...)
		},
	},
}

// TestTroubleshootingExplainsEveryMessage fails when the code emits a
// message or a label that docs/troubleshooting.md does not explain: each
// message's longest literal fragment (Message.Phrase) must appear in the
// page as it is (white space aside), each label in a code span. Reword the
// page when a message changes; DOCSTEST_LIST=1 prints the catalogue.
func TestTroubleshootingExplainsEveryMessage(t *testing.T) {
	root := repoRoot(t)
	raw, err := os.ReadFile(filepath.Join(root, troubleshooting))
	if err != nil {
		t.Fatalf("%s: %v", troubleshooting, err)
	}
	page := Normalize(string(raw))
	list := os.Getenv("DOCSTEST_LIST") != ""
	total := 0
	for _, c := range components {
		srcs, err := ParseDirs(root, c.dirs...)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if len(srcs) == 0 {
			t.Fatalf("%s: no Go files in %v: has the code moved?", c.name, c.dirs)
		}
		msgs := Messages(srcs, c.rules)
		var ids []ID
		if c.ids != nil {
			ids = c.ids(srcs)
		}
		if list {
			fmt.Printf("== %s\n", c.name)
		}
		for _, m := range msgs {
			p := m.Phrase()
			if list {
				fmt.Printf("  %-50s %q\n", m.Pos, strings.ReplaceAll(m.Text, Hole, "…"))
			}
			if p == "" {
				continue
			}
			total++
			if !strings.Contains(page, p) {
				t.Errorf("%s: %s: the message %q is not explained in %s (it must contain %q)",
					c.name, m.Pos, strings.ReplaceAll(m.Text, Hole, "…"), troubleshooting, p)
			}
		}
		for _, id := range ids {
			if list {
				fmt.Printf("  %-50s label %s\n", id.Pos, id.Value)
			}
			total++
			if !strings.Contains(page, "`"+id.Value+"`") {
				t.Errorf("%s: %s: the label `%s` is not explained in %s", c.name, id.Pos, id.Value, troubleshooting)
			}
		}
	}
	// The extraction itself must keep finding what it is meant to find.
	if total < 150 {
		t.Errorf("only %d messages and labels found in the code: the rules no longer match it", total)
	}
}
