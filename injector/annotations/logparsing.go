package annotations

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/fargate-otel/fargate-otel/sidecarconfig"
)

// Log parsing, by annotation.
const (
	// Multiline joins the lines of one record (a stack trace): a preset
	// (java, python, go, nodejs, ruby, dotnet) or regex:<first-line regex>.
	Multiline = Prefix + "multiline"
	// LogParser parses each record: json, logfmt or regex:<regex with
	// named groups>, setting its severity, time and trace context.
	LogParser = Prefix + "log-parser"
)

// AllContainers is the key, in the per-container forms of Multiline and
// LogParser, of the value for every container without its own.
const AllContainers = "*"

// None turns parsing off for a container in the per-container forms.
const None = "none"

// parseParsing reads the value of Multiline or LogParser, in one of its
// forms:
//
//	java                        every captured container
//	regex:^\d{4}-               every captured container (the whole value)
//	web=java,worker=python      per container; the others are not parsed
//	*=java,envoy=none           every container, with exceptions
//	{"web":"regex:^\\d{4}-"}    the same as JSON, for regexes with , or =
//
// It returns the values by container name (AllContainers for every
// container), with "none" as "", and a warning for each entry it ignores.
func parseParsing(key, v string, check func(string) error) (map[string]string, []string) {
	forms := fmt.Sprintf(`write one value for every container (e.g. %s), or values by container: web=...,worker=... (* for the others, none for no parsing), or a JSON object {"web":"..."} when a regex has , or =`, example(key))
	return parsePerContainer(key, v, check, forms, "no parsing")
}

// parsePerContainer reads an annotation of values by container, in the
// forms of parseParsing; forms is what a bad value is told to write, and
// off what applies to a container without a value ("none").
func parsePerContainer(key, v string, check func(string) error, forms, off string) (map[string]string, []string) {
	var warns []string
	warn := func(format string, args ...any) {
		warns = append(warns, fmt.Sprintf("annotation %s: %s", key, fmt.Sprintf(format, args...)))
	}

	entries := map[string]string{}
	var order []string
	put := func(name, value string) {
		if _, dup := entries[name]; dup {
			warn("%s is given twice; the last value is used", describeName(name))
		} else {
			order = append(order, name)
		}
		entries[name] = value
	}
	switch {
	case v == "":
		warn("empty; %s", forms)
		return nil, warns
	case strings.HasPrefix(v, "{"):
		var m map[string]string
		if err := json.Unmarshal([]byte(v), &m); err != nil {
			warn("ignored: not a JSON object of strings (%v); %s", err, forms)
			return nil, warns
		}
		names := make([]string, 0, len(m))
		for name := range m {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			put(name, m[name])
		}
	case strings.HasPrefix(v, sidecarconfig.RegexPrefix) || !strings.Contains(v, "="):
		put(AllContainers, v)
	default:
		for _, item := range strings.Split(v, ",") {
			item = strings.TrimSpace(item)
			if item == "" {
				continue
			}
			name, value, ok := strings.Cut(item, "=")
			if !ok {
				warn("%q ignored: not NAME=VALUE; %s", item, forms)
				continue
			}
			put(strings.TrimSpace(name), strings.TrimSpace(value))
		}
	}

	out := map[string]string{}
	for _, name := range order {
		value := entries[name]
		if name != AllContainers {
			if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
				warn("%q ignored: not a container name (%s); use * for every container", name, strings.Join(errs, "; "))
				continue
			}
		}
		if value == None {
			out[name] = ""
			continue
		}
		if err := check(value); err != nil {
			fallback := "the value for *, else " + off
			if name == AllContainers {
				fallback = off
			}
			warn("%s ignored (%s applies): %v", describeName(name), fallback, err)
			continue
		}
		out[name] = value
	}
	if len(out) == 0 {
		return nil, warns
	}
	return out, warns
}

func describeName(name string) string {
	if name == AllContainers {
		return "the value for every container"
	}
	return "the value for container " + name
}

func example(key string) string {
	if key == Multiline {
		return "java"
	}
	return "json"
}
