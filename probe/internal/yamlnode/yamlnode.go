// Package yamlnode is the strict YAML walker both of flowprobe's file
// formats share: the catalog (probe/catalog) and the site configuration
// (probe/site). It reads one document into a yaml.Node tree and checks it
// key by key with one set of rules: mappings hold only known, unique keys
// (an unknown one is reported with the list of known ones); aliases are
// followed everywhere; a null mapping is an empty one; strings, string
// lists, integers, booleans and durations are checked against their YAML
// type. Every problem becomes an *Error placed at file:line, and all of them
// are reported at once, in file and line order.
package yamlnode

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Error is one problem of a YAML file, placed at file:line and naming what
// it concerns (e.g. "product demo", "flow ldap").
type Error struct {
	File string
	Line int      // 0 when the problem has no line
	Ctx  []string // context, outermost first; empty items are left out
	Msg  string

	syntax bool
}

// Syntax reports whether the error is the YAML parser's: the file is not
// YAML at all.
func (e *Error) Syntax() bool { return e.syntax }

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	for _, c := range e.Ctx {
		if c != "" {
			b.WriteString(c)
			b.WriteString(": ")
		}
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Join joins errs (nil when there are none) in file and line order, so a
// user reads them from the top of each file down; errors of one line keep
// their order, and errors that are not *Error come first.
func Join(errs []error) error {
	key := func(err error) (string, int) {
		var e *Error
		if errors.As(err, &e) {
			return e.File, e.Line
		}
		return "", 0
	}
	slices.SortStableFunc(errs, func(a, b error) int {
		fa, la := key(a)
		fb, lb := key(b)
		if c := strings.Compare(fa, fb); c != 0 {
			return c
		}
		return la - lb
	})
	return errors.Join(errs...)
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// Parse reads data as exactly one YAML document and returns its root node
// with aliases resolved, or nil for an empty file. A syntax error is an
// *Error at its line; so is a second document, a mistake for what (e.g.
// "a config") is one document.
func Parse(file string, data []byte, what string) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, syntaxError(file, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &Error{File: file, Line: extra.Line, Msg: "a second YAML document; " + what + " is one document"}
	} else if !errors.Is(err, io.EOF) {
		return nil, syntaxError(file, err)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	return Resolve(root), nil
}

func syntaxError(file string, err error) *Error {
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{File: file, Line: line, Msg: m[2], syntax: true}
	}
	return &Error{File: file, Msg: strings.TrimPrefix(err.Error(), "yaml: "), syntax: true}
}

// Resolve follows aliases to the node they name.
func Resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// IsNull reports whether n is an explicit or implicit null.
func IsNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// IsString reports whether n is a string scalar (quoted, or plain text that
// YAML does not read as another type).
func IsString(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!str" }

// Walker collects the errors found walking the nodes of one file.
type Walker struct {
	File string
	Errs []error
}

// Errorf records an error at n's line (no line when n is nil).
func (w *Walker) Errorf(n *yaml.Node, ctx []string, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	w.Errs = append(w.Errs, &Error{File: w.File, Line: line, Ctx: slices.Clone(ctx), Msg: fmt.Sprintf(format, args...)})
}

// Map is a checked mapping: its known keys in file order, each with its
// key node (for its line) and its value (aliases resolved).
type Map struct {
	Node  *yaml.Node // the mapping, or the null that stands for an empty one
	Order []string
	keys  map[string]*yaml.Node
	vals  map[string]*yaml.Node
}

// Has reports whether key is set.
func (m *Map) Has(key string) bool { _, ok := m.vals[key]; return ok }

// Value returns key's value, or nil when it is not set.
func (m *Map) Value(key string) *yaml.Node { return m.vals[key] }

// Key returns key's key node, or nil when it is not set.
func (m *Map) Key(key string) *yaml.Node { return m.keys[key] }

// Fields checks that n is a mapping (or null, an empty one) with only
// known keys, each at most once, and returns it. what names the mapping in
// messages ("a role"). It returns nil, after an error, when n is something
// else.
func (w *Walker) Fields(n *yaml.Node, ctx []string, what string, known []string) *Map {
	n = Resolve(n)
	m := &Map{Node: n, keys: map[string]*yaml.Node{}, vals: map[string]*yaml.Node{}}
	if IsNull(n) {
		return m
	}
	if n.Kind != yaml.MappingNode {
		w.Errorf(n, ctx, "%s must be a mapping", what)
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], Resolve(n.Content[i+1])
		switch {
		case !slices.Contains(known, k.Value):
			w.Errorf(k, ctx, "unknown key %q in %s (known: %s)", k.Value, what, strings.Join(slices.Sorted(slices.Values(known)), ", "))
		case m.Has(k.Value):
			w.Errorf(k, ctx, "key %q is set twice in %s", k.Value, what)
		default:
			m.Order = append(m.Order, k.Value)
			m.keys[k.Value], m.vals[k.Value] = k, v
		}
	}
	return m
}

// Pairs returns the key and value nodes (aliases resolved) of a mapping
// whose keys are names the caller checks (label names, check kinds, flow
// ids); nil for null. Anything else is an error, described by shape
// ("labels must be a mapping of label name to value").
func (w *Walker) Pairs(n *yaml.Node, ctx []string, shape string) [][2]*yaml.Node {
	n = Resolve(n)
	if IsNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		w.Errorf(n, ctx, "%s", shape)
		return nil
	}
	out := make([][2]*yaml.Node, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		out = append(out, [2]*yaml.Node{n.Content[i], Resolve(n.Content[i+1])})
	}
	return out
}

// List returns the items (aliases resolved) of a sequence; nil for null.
// Anything else is an error, described by shape ("hosts must be a list of
// names or addresses").
func (w *Walker) List(n *yaml.Node, ctx []string, shape string) ([]*yaml.Node, bool) {
	n = Resolve(n)
	if IsNull(n) {
		return nil, true
	}
	if n.Kind != yaml.SequenceNode {
		w.Errorf(n, ctx, "%s", shape)
		return nil, false
	}
	out := make([]*yaml.Node, len(n.Content))
	for i, e := range n.Content {
		out[i] = Resolve(e)
	}
	return out, true
}

// String returns a string value; key names it in the message.
func (w *Walker) String(n *yaml.Node, ctx []string, key string) (string, bool) {
	n = Resolve(n)
	if !IsString(n) {
		w.Errorf(n, ctx, "%s must be a string", key)
		return "", false
	}
	return n.Value, true
}

// Strings returns a list of strings. With scalarOK a single string stands
// for a list of one.
func (w *Walker) Strings(n *yaml.Node, ctx []string, key string, scalarOK bool) ([]string, bool) {
	n = Resolve(n)
	if scalarOK && IsString(n) {
		return []string{n.Value}, true
	}
	if n.Kind != yaml.SequenceNode {
		if scalarOK {
			w.Errorf(n, ctx, "%s must be a string or a list of strings", key)
		} else {
			w.Errorf(n, ctx, "%s must be a list", key)
		}
		return nil, false
	}
	out := make([]string, 0, len(n.Content))
	ok := true
	for _, e := range n.Content {
		e = Resolve(e)
		if !IsString(e) {
			w.Errorf(e, ctx, "%s: each item must be a string", key)
			ok = false
			continue
		}
		out = append(out, e.Value)
	}
	return out, ok
}

// Int returns an integer value.
func (w *Walker) Int(n *yaml.Node, ctx []string, key string) (int, bool) {
	n = Resolve(n)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!int" {
		if v, err := strconv.Atoi(n.Value); err == nil {
			return v, true
		}
	}
	w.Errorf(n, ctx, "%s must be an integer, not %q", key, n.Value)
	return 0, false
}

// Bool returns a boolean value.
func (w *Walker) Bool(n *yaml.Node, ctx []string, key string) (bool, bool) {
	n = Resolve(n)
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		w.Errorf(n, ctx, "%s must be true or false, not %q", key, n.Value)
		return false, false
	}
	return n.Value == "true", true
}

// Duration returns a duration such as 30s; it must be greater than 0, or
// with zeroOK (0 turns a setting off) not negative.
func (w *Walker) Duration(n *yaml.Node, ctx []string, key string, zeroOK bool) (time.Duration, bool) {
	n = Resolve(n)
	if n.Kind != yaml.ScalarNode {
		w.Errorf(n, ctx, "%s must be a duration such as 30s or 1m", key)
		return 0, false
	}
	d, err := time.ParseDuration(n.Value)
	switch {
	case err != nil:
		w.Errorf(n, ctx, "%s %q is not a duration such as 30s or 1m", key, n.Value)
	case d < 0 && zeroOK:
		w.Errorf(n, ctx, "%s must not be negative (0 turns it off), not %s", key, n.Value)
	case d <= 0 && !zeroOK:
		w.Errorf(n, ctx, "%s must be greater than 0, not %s", key, n.Value)
	default:
		return d, true
	}
	return 0, false
}
