package sidecarconfig

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// LogParsing is how the file_log receiver turns the lines of the pod's
// containers into records: multiline records (stack traces) and parsed
// lines (JSON, logfmt, a regex). It is rendered as operators of the one
// file_log receiver, after the container parser, so that a change of
// parsing (the fleet may change it live) keeps the receiver's saved offsets.
type LogParsing struct {
	// Default applies to every container without an entry in Containers.
	Default Parsing `json:"default"`
	// Containers are the containers parsed otherwise, by name; an entry
	// replaces Default whole (an empty Parsing turns parsing off for that
	// container).
	Containers map[string]Parsing `json:"containers,omitempty"`
}

// Parsing is how one container's lines are parsed.
type Parsing struct {
	// Multiline joins the lines of one record into one: a preset
	// (MultilinePresets) or "regex:" followed by the regex of a record's
	// first line. Empty: every line is its own record.
	Multiline string `json:"multiline,omitempty"`
	// Parser parses each record into attributes and sets its severity,
	// time and trace context from them: "json", "logfmt", or "regex:"
	// followed by a regex with named groups. Empty: the body stays text.
	Parser string `json:"parser,omitempty"`
}

// RegexPrefix starts a custom regex in Parsing.Multiline and Parsing.Parser.
const RegexPrefix = "regex:"

// Parsers are the Parsing.Parser values besides "regex:<expr>".
var Parsers = []string{"json", "logfmt"}

// IsZero reports whether p parses nothing.
func (p Parsing) IsZero() bool { return p.Multiline == "" && p.Parser == "" }

// IsZero reports whether l parses nothing, for any container.
func (l LogParsing) IsZero() bool {
	if !l.Default.IsZero() {
		return false
	}
	for _, p := range l.Containers {
		if !p.IsZero() {
			return false
		}
	}
	return true
}

func (l LogParsing) clone() LogParsing {
	return LogParsing{Default: l.Default, Containers: maps.Clone(l.Containers)}
}

// For is the parsing of one container.
func (l LogParsing) For(container string) Parsing {
	if p, ok := l.Containers[container]; ok {
		return p
	}
	return l.Default
}

// CheckMultiline says what is wrong with a Parsing.Multiline value, in
// words that say what to write instead.
func CheckMultiline(v string) error {
	if v == "" {
		return nil
	}
	if re, ok := strings.CutPrefix(v, RegexPrefix); ok {
		if re == "" {
			return errors.New(`"regex:" needs the regex of a record's first line after it, e.g. regex:^\d{4}-\d{2}-\d{2}`)
		}
		if _, err := regexp.Compile(re); err != nil {
			return fmt.Errorf("the first-line regex %q does not compile (Go RE2 syntax): %w", re, err)
		}
		return nil
	}
	if _, ok := multilinePresets[v]; !ok {
		return fmt.Errorf("%q is not a multiline preset: use one of %s, or regex:<regex of a record's first line>",
			v, strings.Join(MultilinePresets(), ", "))
	}
	return nil
}

// CheckParser says what is wrong with a Parsing.Parser value, in words
// that say what to write instead.
func CheckParser(v string) error {
	if v == "" || slices.Contains(Parsers, v) {
		return nil
	}
	re, ok := strings.CutPrefix(v, RegexPrefix)
	if !ok {
		return fmt.Errorf("%q is not a log parser: use json, logfmt, or regex:<regex with named groups>", v)
	}
	compiled, err := regexp.Compile(re)
	if err != nil {
		return fmt.Errorf("the parser regex %q does not compile (Go RE2 syntax): %w", re, err)
	}
	if !slices.ContainsFunc(compiled.SubexpNames(), func(n string) bool { return n != "" }) {
		return fmt.Errorf("the parser regex %q has no named group: name the parts to keep, e.g. regex:^(?P<level>\\w+) (?P<msg>.*)$", re)
	}
	return nil
}

// containerName is a Kubernetes container name (a DNS-1123 label).
var containerName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

func (l LogParsing) validate() []error {
	var errs []error
	check := func(where string, p Parsing) {
		if err := CheckMultiline(p.Multiline); err != nil {
			errs = append(errs, fmt.Errorf("log parsing of %s: multiline: %w", where, err))
		}
		if err := CheckParser(p.Parser); err != nil {
			errs = append(errs, fmt.Errorf("log parsing of %s: parser: %w", where, err))
		}
	}
	check("every container", l.Default)
	for _, name := range l.containerNames() {
		if !containerName.MatchString(name) {
			errs = append(errs, fmt.Errorf("log parsing: %q is not a container name (lowercase letters, digits and -, at most 63)", name))
			continue
		}
		check("container "+name, l.Containers[name])
	}
	return errs
}

// containerNames are the names in Containers, sorted (the render order).
func (l LogParsing) containerNames() []string {
	names := make([]string, 0, len(l.Containers))
	for name := range l.Containers {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
