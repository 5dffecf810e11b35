package docstest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// A Message is a text the code emits for people, as the source writes it:
// literal text with the dynamic parts (format verbs, variables) cut out.
type Message struct {
	// Pos is file:line, relative to the repository.
	Pos string
	// Text is the message with every dynamic part as Hole.
	Text string
}

// Hole stands for a dynamic part of a Message's Text.
const Hole = "\x00"

// MinPhrase is the shortest literal fragment that counts as a message's
// stable text; a message with none that long says nothing by itself (its
// meaning is in its variables) and is not checked.
const MinPhrase = 16

// Phrase is the longest literal fragment of the message, with white space
// normalized and punctuation trimmed at both ends: what a reader of the
// documentation can search for. Empty when shorter than MinPhrase.
func (m Message) Phrase() string {
	best := ""
	for _, f := range strings.Split(m.Text, Hole) {
		f = strings.Trim(Normalize(f), " ,;:.()\"'")
		if len(f) > len(best) {
			best = f
		}
	}
	if len(best) < MinPhrase {
		return ""
	}
	return best
}

// verbRE matches a fmt verb (with flags, width, precision).
var verbRE = regexp.MustCompile(`%[-+# 0]*(?:\d+|\*)?(?:\.(?:\d+|\*))?[a-zA-Z]`)

// textOf is the text an expression stands for: string literals as they
// are, fmt.Sprintf and fmt.Errorf by their format, + joined, anything else
// a Hole.
func textOf(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind != token.STRING {
			return Hole
		}
		s, err := strconv.Unquote(e.Value)
		if err != nil {
			return Hole
		}
		return strings.ReplaceAll(verbRE.ReplaceAllString(s, Hole), "%%", "%")
	case *ast.BinaryExpr:
		if e.Op == token.ADD {
			return textOf(e.X) + textOf(e.Y)
		}
	case *ast.ParenExpr:
		return textOf(e.X)
	case *ast.CallExpr:
		switch name := calleeName(e); {
		case (name == "Sprintf" || name == "Errorf") && len(e.Args) > 0:
			return textOf(e.Args[0])
		case slices.Contains(passThrough, name) && len(e.Args) > 0:
			return textOf(e.Args[0])
		}
	}
	return Hole
}

// passThrough are calls that shorten a message they are given and return
// it otherwise unchanged: registry.Cap(msg, n), shorten(msg, n).
var passThrough = []string{"Cap", "shorten"}

// hasText says whether an expression holds any literal text.
func hasText(e ast.Expr) bool {
	return strings.Trim(textOf(e), Hole) != ""
}

// firstText is the text of the first argument of call that holds literal
// text (warn(key, "format", ...) and warnf("format", ...) alike), or "".
func firstText(call *ast.CallExpr) string {
	for _, a := range call.Args {
		if hasText(a) {
			return textOf(a)
		}
	}
	return ""
}

// calleeName is the name of the function or method a call calls.
func calleeName(call *ast.CallExpr) string {
	switch f := call.Fun.(type) {
	case *ast.Ident:
		return f.Name
	case *ast.SelectorExpr:
		return f.Sel.Name
	}
	return ""
}

// exprName is the name an assignment's left side ends in (x, a.x), or "".
func exprName(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return e.Sel.Name
	}
	return ""
}

// Source is a parsed Go file of the repository.
type Source struct {
	Rel  string // path relative to the repository
	Fset *token.FileSet
	File *ast.File
}

func (s Source) pos(p token.Pos) string {
	return s.Rel + ":" + strconv.Itoa(s.Fset.Position(p).Line)
}

// ParseDirs parses the non-test, non-generated Go files of the given
// folders of root (each folder alone; "dir/..." includes its sub-folders).
func ParseDirs(root string, dirs ...string) ([]Source, error) {
	var out []Source
	fset := token.NewFileSet()
	add := func(path string) error {
		rel, _ := filepath.Rel(root, path)
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		if ast.IsGenerated(f) {
			return nil
		}
		out = append(out, Source{Rel: filepath.ToSlash(rel), Fset: fset, File: f})
		return nil
	}
	for _, d := range dirs {
		recursive := strings.HasSuffix(d, "/...")
		dir := filepath.Join(root, strings.TrimSuffix(d, "/..."))
		if recursive {
			err := filepath.WalkDir(dir, func(path string, e os.DirEntry, err error) error {
				if err != nil {
					return err
				}
				// Test data and test harnesses (kubelettest, fleettest, ...)
				// emit nothing a user meets.
				if e.IsDir() && path != dir && (e.Name() == "testdata" || strings.HasSuffix(e.Name(), "test") || strings.HasPrefix(e.Name(), ".")) {
					return filepath.SkipDir
				}
				if e.IsDir() {
					return nil
				}
				return add(path)
			})
			if err != nil {
				return nil, err
			}
			continue
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if !e.IsDir() {
				if err := add(filepath.Join(dir, e.Name())); err != nil {
					return nil, err
				}
			}
		}
	}
	return out, nil
}

// Rules say which texts of a set of sources are messages for people.
type Rules struct {
	// Calls: the first text-bearing argument of calls of these names
	// (warnf, say, Warn, ...).
	Calls []string
	// CallArg: argument i of calls of a name ({"add": 2}), when it has text.
	CallArg map[string]int
	// Prefixes: any text that starts with one of these (Hole for a verb).
	Prefixes []string
	// Assigned: texts assigned to a variable or field of these names.
	Assigned []string
	// Returned: texts returned by functions of these names (advice).
	Returned []string
	// Keys: texts of these keys of composite literals (Note: ...).
	Keys []string
	// Skip: calls whose argument number CallArg names are left out when
	// argument skipArg is one of these identifiers (add(name, OK, ...)).
	SkipWhenArg map[string]struct {
		Arg    int
		Idents []string
	}
}

// Messages applies the rules to the sources. Each text is reported once
// per position.
func Messages(srcs []Source, r Rules) []Message {
	var out []Message
	seen := map[string]bool{}
	emit := func(s Source, p token.Pos, text string) {
		if strings.Trim(text, Hole) == "" {
			return
		}
		key := s.pos(p) + "\x01" + text
		if seen[key] {
			return
		}
		seen[key] = true
		out = append(out, Message{Pos: s.pos(p), Text: text})
	}
	for _, s := range srcs {
		var fn []string // names of the enclosing functions
		ast.Inspect(s.File, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.FuncDecl:
				fn = append(fn[:0], n.Name.Name)
			case *ast.CallExpr:
				name := calleeName(n)
				if slices.Contains(r.Calls, name) {
					emit(s, n.Pos(), firstText(n))
				}
				if i, ok := r.CallArg[name]; ok && i < len(n.Args) {
					skip := false
					if w, ok := r.SkipWhenArg[name]; ok && w.Arg < len(n.Args) {
						if id, ok := n.Args[w.Arg].(*ast.Ident); ok && slices.Contains(w.Idents, id.Name) {
							skip = true
						}
					}
					if !skip && hasText(n.Args[i]) {
						emit(s, n.Pos(), textOf(n.Args[i]))
					}
				}
				if name == "Sprintf" || name == "Errorf" {
					if t := textOf(n); hasPrefix(t, r.Prefixes) {
						emit(s, n.Pos(), t)
					}
					return false // its format is reported above when it matters
				}
			case *ast.BinaryExpr:
				if t := textOf(n); n.Op == token.ADD && hasPrefix(t, r.Prefixes) {
					emit(s, n.Pos(), t)
					return false
				}
			case *ast.BasicLit:
				if t := textOf(n); hasPrefix(t, r.Prefixes) {
					emit(s, n.Pos(), t)
				}
			case *ast.AssignStmt:
				for i, l := range n.Lhs {
					if i < len(n.Rhs) && slices.Contains(r.Assigned, exprName(l)) && hasText(n.Rhs[i]) {
						emit(s, n.Pos(), textOf(n.Rhs[i]))
					}
				}
			case *ast.ReturnStmt:
				if len(fn) > 0 && slices.Contains(r.Returned, fn[0]) {
					for _, res := range n.Results {
						if hasText(res) {
							emit(s, n.Pos(), textOf(res))
						}
					}
				}
			case *ast.KeyValueExpr:
				if k, ok := n.Key.(*ast.Ident); ok && slices.Contains(r.Keys, k.Name) && hasText(n.Value) {
					emit(s, n.Pos(), textOf(n.Value))
				}
			}
			return true
		})
	}
	return out
}

func hasPrefix(t string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(t, p) {
			return true
		}
	}
	return false
}

// An ID is a stable label the code emits (a skip reason, a doctor check's
// name, an Event's reason, a refusal reason), which the documentation must
// name in a code span.
type ID struct {
	Pos   string
	Value string
}

// TypedConsts returns the values of the string constants of the named type
// (SkipReason) declared in the sources.
func TypedConsts(srcs []Source, typ string) []ID {
	return consts(srcs, func(name string, t ast.Expr) bool {
		id, ok := t.(*ast.Ident)
		return ok && id.Name == typ
	})
}

// PrefixedConsts returns the values of the string constants whose names
// start with prefix (CheckNamespace, CheckFleet, ...).
func PrefixedConsts(srcs []Source, prefix string) []ID {
	return consts(srcs, func(name string, _ ast.Expr) bool {
		return strings.HasPrefix(name, prefix) && len(name) > len(prefix)
	})
}

func consts(srcs []Source, want func(name string, typ ast.Expr) bool) []ID {
	var out []ID
	for _, s := range srcs {
		for _, d := range s.File.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, spec := range g.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if i >= len(vs.Values) || !want(n.Name, vs.Type) {
						continue
					}
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						v, _ := strconv.Unquote(lit.Value)
						out = append(out, ID{Pos: s.pos(n.Pos()), Value: v})
					}
				}
			}
		}
	}
	return out
}

// snakeRE is what a reason label looks like (rate_limited, no_token).
var snakeRE = regexp.MustCompile(`^[a-z]+(?:_[a-z]+)*$`)

// CallLabels returns the snake_case string literals passed to calls of the
// given name, and those assigned to variables named like one of vars (a
// reason chosen before the call): refuse(w, r, res, 429, "rate_limited", ...).
func CallLabels(srcs []Source, call string, vars ...string) []ID {
	var out []ID
	for _, s := range srcs {
		ast.Inspect(s.File, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				if calleeName(n) != call {
					return true
				}
				for _, a := range n.Args {
					if lit, ok := a.(*ast.BasicLit); ok && lit.Kind == token.STRING {
						if v, _ := strconv.Unquote(lit.Value); snakeRE.MatchString(v) {
							out = append(out, ID{Pos: s.pos(lit.Pos()), Value: v})
						}
					}
				}
			case *ast.AssignStmt:
				for i, l := range n.Lhs {
					if i >= len(n.Rhs) || !slices.Contains(vars, exprName(l)) {
						continue
					}
					if lit, ok := n.Rhs[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						if v, _ := strconv.Unquote(lit.Value); snakeRE.MatchString(v) {
							out = append(out, ID{Pos: s.pos(lit.Pos()), Value: v})
						}
					}
				}
			}
			return true
		})
	}
	return out
}

// EventReasons returns the reasons of the Events the sources record: the
// reason argument of Eventf(regarding, related, type, reason, ...) and the
// Reason field of Event literals, literal or a constant of the sources.
func EventReasons(srcs []Source) []ID {
	values := map[string]string{}
	for _, s := range srcs {
		for _, d := range s.File.Decls {
			if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.CONST {
				for _, spec := range g.Specs {
					vs := spec.(*ast.ValueSpec)
					for i, n := range vs.Names {
						if i < len(vs.Values) {
							if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
								values[n.Name], _ = strconv.Unquote(lit.Value)
							}
						}
					}
				}
			}
		}
	}
	value := func(e ast.Expr) (string, bool) {
		switch e := e.(type) {
		case *ast.BasicLit:
			v, err := strconv.Unquote(e.Value)
			return v, err == nil
		case *ast.Ident:
			v, ok := values[e.Name]
			return v, ok
		case *ast.SelectorExpr:
			v, ok := values[e.Sel.Name]
			return v, ok
		}
		return "", false
	}
	var out []ID
	for _, s := range srcs {
		ast.Inspect(s.File, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				if calleeName(n) == "Eventf" && len(n.Args) > 3 {
					if v, ok := value(n.Args[3]); ok {
						out = append(out, ID{Pos: s.pos(n.Pos()), Value: v})
					}
				}
			case *ast.CompositeLit:
				if exprName(n.Type) != "Event" {
					return true
				}
				for _, el := range n.Elts {
					kv, ok := el.(*ast.KeyValueExpr)
					if !ok {
						continue
					}
					if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "Reason" {
						if v, ok := value(kv.Value); ok && v != "" {
							out = append(out, ID{Pos: s.pos(kv.Pos()), Value: v})
						}
					}
				}
			}
			return true
		})
	}
	return out
}
