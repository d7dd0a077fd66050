// Command schemagen regenerates the parts of deploy/config.schema.json
// that come from the check registry: the list of check kinds ($defs
// checkKind), the options by kind ($defs kindOptions) and one options
// schema per kind ($defs options.<kind>, and options.type.<Go type> for the
// structs they share), read
// from the options structs' yaml tags, types and defaults. Every other part
// of the file is hand-written and kept as it is.
//
// Run it through go generate ./checks.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/flowprobe/flowprobe/checks"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: schemagen path/to/config.schema.json")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "schemagen:", err)
		os.Exit(1)
	}
}

func run(path string) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	b, err := generate(old)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if bytes.Equal(b, old) {
		return nil
	}
	return os.WriteFile(path, b, 0o644)
}

// generate returns schema with its generated $defs entries brought up to
// date: existing ones replaced in place, new ones appended, stale
// options.* entries dropped.
func generate(schema []byte) ([]byte, error) {
	defs, err := registryDefs()
	if err != nil {
		return nil, err
	}
	open, closing, members, err := defsMembers(schema)
	if err != nil {
		return nil, err
	}
	done := map[string]bool{}
	var out []string
	for _, m := range members {
		v, generated := defs.get(m.key)
		switch {
		case generated:
			out = append(out, member(m.key, v))
			done[m.key] = true
		case strings.HasPrefix(m.key, "options."):
			// a kind that is gone
		default:
			out = append(out, "    "+m.text)
		}
	}
	for _, d := range defs {
		if !done[d.k] {
			out = append(out, member(d.k, d.v))
		}
	}
	var b bytes.Buffer
	b.Write(schema[:open])
	b.WriteString("\n" + strings.Join(out, ",\n") + "\n  ")
	b.Write(schema[closing:])
	return b.Bytes(), nil
}

func member(key string, v any) string {
	return "    " + quote(key) + ": " + render(v, "    ", len(key)+8)
}

// registryDefs builds the generated $defs entries, in the order new ones
// are appended.
func registryDefs() (obj, error) {
	names := checks.Names()
	enum := make([]any, len(names))
	byKind := obj{}
	var perKind obj
	shared := map[string]obj{}
	for i, n := range names {
		enum[i] = n
		k, _ := checks.Lookup(n)
		byKind = append(byKind, kv{n, obj{{"$ref", "#/$defs/options." + n}}})
		props, err := properties(reflect.ValueOf(k.NewOptions()).Elem(), shared)
		if err != nil {
			return nil, fmt.Errorf("%s options: %w", n, err)
		}
		perKind = append(perKind, kv{"options." + n, obj{
			{"description", k.Summary + "."},
			{"type", []any{"object", "null"}},
			{"additionalProperties", false},
			{"properties", props},
		}})
	}
	defs := obj{
		{"checkKind", obj{{"enum", enum}}},
		{"kindOptions", obj{
			{"description", "Check options by check kind, e.g. {ldap: {bind_dn: ...}, snmp: {version: 2c}}."},
			{"type", "object"},
			{"additionalProperties", false},
			{"properties", byKind},
		}},
	}
	defs = append(defs, perKind...)
	for _, name := range slices.Sorted(mapsKeys(shared)) {
		defs = append(defs, kv{name, shared[name]})
	}
	return defs, nil
}

func mapsKeys(m map[string]obj) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

var (
	durationType    = reflect.TypeFor[time.Duration]()
	headerValueType = reflect.TypeFor[checks.HeaderValue]()
)

// headerValueSchema is an http header's value: a string, or a secret read
// from a file or the environment (checks.HeaderValue).
var headerValueSchema = obj{{"anyOf", []any{
	obj{{"type", "string"}},
	obj{
		{"type", "object"}, {"additionalProperties", false}, {"minProperties", 1}, {"maxProperties", 1},
		{"properties", obj{{"value_file", obj{{"type", "string"}}}, {"value_env", obj{{"type", "string"}}}}},
	},
}}}

// properties describes the yaml fields of struct value v; a field's
// non-zero value in v is its default. Structs behind pointers become
// shared $defs entries named after their type.
func properties(v reflect.Value, shared map[string]obj) (obj, error) {
	var props obj
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if f.Anonymous && opts == "inline" {
			inner, err := properties(v.Field(i), shared)
			if err != nil {
				return nil, err
			}
			props = append(props, inner...)
			continue
		}
		if name == "" {
			return nil, fmt.Errorf("field %s has no yaml name", f.Name)
		}
		s, err := typeSchema(f.Type, shared)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", f.Name, err)
		}
		if types := f.Tag.Get("schema"); types != "" {
			// The yaml decoder also takes these scalar types for the field.
			s = obj{{"type", toAny(strings.Split(types, "|"))}}
		}
		if fv := v.Field(i); !fv.IsZero() {
			s = append(s, kv{"default", defaultOf(fv)})
		}
		props = append(props, kv{name, s})
	}
	return props, nil
}

func toAny(ss []string) []any {
	a := make([]any, len(ss))
	for i, s := range ss {
		a[i] = s
	}
	return a
}

func typeSchema(t reflect.Type, shared map[string]obj) (obj, error) {
	switch t {
	case durationType:
		return obj{{"$ref", "#/$defs/durationOrZero"}}, nil
	case headerValueType:
		return headerValueSchema, nil
	}
	switch t.Kind() {
	case reflect.String:
		return obj{{"type", "string"}}, nil
	case reflect.Bool:
		return obj{{"type", "boolean"}}, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return obj{{"type", "integer"}}, nil
	case reflect.Float32, reflect.Float64:
		return obj{{"type", "number"}}, nil
	case reflect.Slice:
		items, err := typeSchema(t.Elem(), shared)
		if err != nil {
			return nil, err
		}
		return obj{{"type", "array"}, {"items", items}}, nil
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return nil, fmt.Errorf("map key %s", t.Key())
		}
		vals, err := typeSchema(t.Elem(), shared)
		if err != nil {
			return nil, err
		}
		return obj{{"type", "object"}, {"additionalProperties", vals}}, nil
	case reflect.Pointer:
		if t.Elem().Kind() != reflect.Struct {
			return typeSchema(t.Elem(), shared)
		}
		name := "options.type." + t.Elem().Name()
		if _, ok := shared[name]; !ok {
			shared[name] = nil // break cycles
			props, err := properties(reflect.New(t.Elem()).Elem(), shared)
			if err != nil {
				return nil, err
			}
			shared[name] = obj{{"type", "object"}, {"additionalProperties", false}, {"properties", props}}
		}
		return obj{{"$ref", "#/$defs/" + name}}, nil
	}
	return nil, fmt.Errorf("no schema for type %s", t)
}

func defaultOf(v reflect.Value) any {
	if v.Type() == durationType {
		return time.Duration(v.Int()).String()
	}
	switch v.Kind() {
	case reflect.Slice:
		a := make([]any, v.Len())
		for i := range a {
			a[i] = defaultOf(v.Index(i))
		}
		return a
	case reflect.Pointer:
		return defaultOf(v.Elem())
	}
	return v.Interface()
}

// obj is a JSON object that keeps its keys in order.
type obj []kv

type kv struct {
	k string
	v any
}

func (o obj) get(k string) (any, bool) {
	for _, e := range o {
		if e.k == k {
			return e.v, true
		}
	}
	return nil, false
}

// render writes v the way the hand-written parts of the schema are laid
// out: on one line when it fits in 100 columns (after col columns), one
// member per line otherwise.
func render(v any, indent string, col int) string {
	line := inline(v)
	if col+len(line) <= 100 {
		return line
	}
	next := indent + "  "
	switch v := v.(type) {
	case obj:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = next + quote(e.k) + ": " + render(e.v, next, len(next)+len(e.k)+4)
		}
		return "{\n" + strings.Join(parts, ",\n") + "\n" + indent + "}"
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = next + render(e, next, len(next))
		}
		return "[\n" + strings.Join(parts, ",\n") + "\n" + indent + "]"
	}
	return line
}

func inline(v any) string {
	switch v := v.(type) {
	case obj:
		if len(v) == 0 {
			return "{}"
		}
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = quote(e.k) + ": " + inline(e.v)
		}
		return "{ " + strings.Join(parts, ", ") + " }"
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = inline(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case string:
		return quote(v)
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func quote(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		panic(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// defsMember is one member of the schema's $defs object as written.
type defsMember struct {
	key  string
	text string // from the key's opening quote to the end of its value
}

// defsMembers finds the $defs object of the schema: the offset just after
// its "{", the offset of its "}", and its members.
func defsMembers(schema []byte) (open, closing int, members []defsMember, err error) {
	dec := json.NewDecoder(bytes.NewReader(schema))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return 0, 0, nil, errors.New("not a JSON object")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return 0, 0, nil, err
		}
		if tok != "$defs" {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return 0, 0, nil, err
			}
			continue
		}
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			return 0, 0, nil, errors.New("$defs is not an object")
		}
		open = int(dec.InputOffset())
		prev := open
		for dec.More() {
			key, err := dec.Token()
			if err != nil {
				return 0, 0, nil, err
			}
			var val json.RawMessage
			if err := dec.Decode(&val); err != nil {
				return 0, 0, nil, err
			}
			end := int(dec.InputOffset())
			members = append(members, defsMember{key: key.(string), text: strings.TrimLeft(string(schema[prev:end]), " \t\r\n,")})
			prev = end
		}
		if _, err := dec.Token(); err != nil {
			return 0, 0, nil, err
		}
		return open, int(dec.InputOffset()) - 1, members, nil
	}
	return 0, 0, nil, errors.New("no $defs")
}
