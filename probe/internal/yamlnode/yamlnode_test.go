package yamlnode

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// One walk over a document with every kind of value: aliases are followed,
// null mappings are empty, type errors and unknown keys are reported with
// file:line, and Join orders them from the top of the file down.
func TestWalk(t *testing.T) {
	src := `base: &b {n: 3, on: true, d: 30s, s: text, l: [a, b]}
copy: *b
bad: {n: "3", on: yes, d: 0s, s: 42, l: [x, 7], zzz: 1, n: 4}
none:
`
	root, err := Parse("f.yml", []byte(src), "a test file")
	if err != nil || root == nil {
		t.Fatalf("Parse: %v %v", root, err)
	}
	w := &Walker{File: "f.yml"}
	top := w.Fields(root, nil, "the file", []string{"base", "copy", "bad", "none"})
	known := []string{"n", "on", "d", "s", "l"}
	for _, key := range []string{"base", "copy", "bad"} {
		ctx := []string{"block " + key}
		m := w.Fields(top.Value(key), ctx, "a block", known)
		n, nok := w.Int(m.Value("n"), ctx, "n")
		on, bok := w.Bool(m.Value("on"), ctx, "on")
		d, dok := w.Duration(m.Value("d"), ctx, "d", false)
		s, sok := w.String(m.Value("s"), ctx, "s")
		l, lok := w.Strings(m.Value("l"), ctx, "l", false)
		if key != "bad" && (n != 3 || !on || d != 30*time.Second || s != "text" || strings.Join(l, ",") != "a,b" || !(nok && bok && dok && sok && lok)) {
			t.Errorf("%s: %v %v %v %q %q", key, n, on, d, s, l)
		}
	}
	if m := w.Fields(top.Value("none"), nil, "none", known); m == nil || len(m.Order) != 0 {
		t.Errorf("a null mapping is not an empty one: %+v", m)
	}
	want := []string{
		`f.yml:3: block bad: n must be an integer, not "3"`,
		`f.yml:3: block bad: on must be true or false, not "yes"`,
		`f.yml:3: block bad: d must be greater than 0, not 0s`,
		`f.yml:3: block bad: s must be a string`,
		`f.yml:3: block bad: l: each item must be a string`,
		`f.yml:3: block bad: unknown key "zzz" in a block (known: d, l, n, on, s)`,
		`f.yml:3: block bad: key "n" is set twice in a block`,
	}
	got := strings.Split(Join(w.Errs).Error(), "\n")
	for _, line := range want {
		found := false
		for _, g := range got {
			found = found || g == line
		}
		if !found {
			t.Errorf("missing %q in:\n%s", line, strings.Join(got, "\n"))
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d errors, want %d", len(got), len(want))
	}
}

func TestParse(t *testing.T) {
	if root, err := Parse("f.yml", []byte("# nothing\n"), "x"); root != nil || err != nil {
		t.Errorf("empty file: %v %v", root, err)
	}
	_, err := Parse("f.yml", []byte("a: 1\n---\nb: 2\n"), "a config")
	if err == nil || err.Error() != "f.yml:2: a second YAML document; a config is one document" {
		t.Errorf("second document: %v", err)
	}
	_, err = Parse("f.yml", []byte("a: [1\n"), "x")
	var e *Error
	if !errors.As(err, &e) || !e.Syntax() || e.File != "f.yml" {
		t.Errorf("syntax error: %#v", err)
	}
}

func TestJoinOrdersByFileAndLine(t *testing.T) {
	errs := []error{
		&Error{File: "b", Line: 1, Msg: "b1"},
		&Error{File: "a", Line: 9, Msg: "a9"},
		&Error{File: "a", Line: 2, Msg: "a2 first"},
		&Error{File: "a", Line: 2, Msg: "a2 second"},
	}
	if got := Join(errs).Error(); got != "a:2: a2 first\na:2: a2 second\na:9: a9\nb:1: b1" {
		t.Errorf("Join:\n%s", got)
	}
	if Join(nil) != nil {
		t.Error("Join(nil) is not nil")
	}
}
