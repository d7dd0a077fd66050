package site_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"github.com/flowprobe/flowprobe/checks"
	"github.com/flowprobe/flowprobe/probe/catalog"
	"github.com/flowprobe/flowprobe/probe/site"
)

const schemaFile = "../../deploy/config.schema.json"

func compileSchema(t *testing.T) (*jsonschema.Schema, map[string]any) {
	t.Helper()
	raw, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%s is not JSON: %v", schemaFile, err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("config.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("config.schema.json")
	if err != nil {
		t.Fatalf("compile %s: %v", schemaFile, err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return sch, m
}

// yamlAsJSON reads a YAML file the way an editor's schema validation sees it.
func yamlAsJSON(t *testing.T, file string) any {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

// The schema accepts every example and good test file, and those plan
// cleanly against the shipped catalog and the check registry.
func TestSchemaAcceptsExamples(t *testing.T) {
	t.Setenv("FLOWPROBE_AD_PASSWORD", "example")
	sch, _ := compileSchema(t)
	cat, err := catalog.Load()
	if err != nil {
		t.Fatal(err)
	}
	examples, _ := filepath.Glob("../../deploy/examples/*.yml")
	good, _ := filepath.Glob("testdata/config/good/*.yml")
	if len(examples) != 4 || len(good) == 0 {
		t.Fatalf("examples %v, good files %v", examples, good)
	}
	for _, f := range append(examples, good...) {
		if err := sch.Validate(yamlAsJSON(t, f)); err != nil {
			t.Errorf("%s: schema: %v", f, err)
		}
	}
	for _, f := range examples {
		cfg, err := site.LoadConfig(f)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		res, err := site.Plan(cat, cfg, checks.Binder{})
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if len(res.Targets) == 0 || len(res.Rules()) == 0 {
			t.Errorf("%s plans %d targets and %d rules", f, len(res.Targets), len(res.Rules()))
		}
	}
}

// Files with unknown keys or wrong shapes fail the schema too, so editors
// flag what flowprobe rejects.
func TestSchemaRejectsBadFiles(t *testing.T) {
	sch, _ := compileSchema(t)
	for _, f := range []string{"testdata/config/bad/unknown-keys.yml", "testdata/config/bad/shapes.yml", "testdata/config/bad/values.yml"} {
		if err := sch.Validate(yamlAsJSON(t, f)); err == nil {
			t.Errorf("%s: the schema accepts it", f)
		}
	}
}

var knownList = regexp.MustCompile(`\(known: ([a-z_, ]+)\)`)

// parserKeys returns the keys the config parser knows in a block, read from
// its unknown-key message for the YAML src (which has an unknown key).
func parserKeys(t *testing.T, src string) []string {
	t.Helper()
	_, err := site.ParseConfig("keys.yml", []byte(src))
	if err == nil {
		t.Fatalf("no error for %q", src)
	}
	m := knownList.FindStringSubmatch(err.Error())
	if m == nil {
		t.Fatalf("no key list in %v", err)
	}
	return strings.Split(m[1], ", ")
}

func schemaKeys(t *testing.T, node any, path ...string) []string {
	t.Helper()
	for _, p := range path {
		m, ok := node.(map[string]any)
		if !ok {
			t.Fatalf("schema path %v: not an object at %q", path, p)
		}
		node = m[p]
	}
	props, ok := node.(map[string]any)
	if !ok {
		t.Fatalf("schema path %v: no properties", path)
	}
	var keys []string
	for k := range props {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// The schema names exactly the keys the parser accepts, block by block,
// and exactly the registered check kinds.
func TestSchemaMatchesParser(t *testing.T) {
	_, schema := compileSchema(t)
	for _, tc := range []struct {
		yaml string
		path []string
	}{
		{"zzz: 1", []string{"properties"}},
		{"defaults: {zzz: 1}", []string{"properties", "defaults", "properties"}},
		{"scheduler: {zzz: 1}", []string{"properties", "scheduler", "properties"}},
		{"trace: {zzz: 1}", []string{"properties", "trace", "properties"}},
		{"products: [{name: p, zzz: 1}]", []string{"$defs", "product", "properties"}},
		{"products: [{name: p, roles: {r: {zzz: 1}}}]", []string{"$defs", "role", "properties"}},
		{"products: [{name: p, roles: {r: {hosts: [{host: h, zzz: 1}]}}}]", []string{"$defs", "role", "properties", "hosts", "items", "oneOf", "1", "properties"}},
		{"products: [{name: p, flows: {f: {zzz: 1}}}]", []string{"$defs", "flow", "properties"}},
		{"products: [{name: p, extra_flows: [{id: f, zzz: 1}]}]", []string{"$defs", "extraFlow", "properties"}},
	} {
		want := parserKeys(t, tc.yaml)
		got := schemaKeysAt(t, schema, tc.path)
		if !slices.Equal(got, want) {
			t.Errorf("%v: schema has %v, parser knows %v", tc.path, got, want)
		}
	}
	var kinds []string
	for _, k := range schema["$defs"].(map[string]any)["checkKind"].(map[string]any)["enum"].([]any) {
		kinds = append(kinds, k.(string))
	}
	slices.Sort(kinds)
	if !slices.Equal(kinds, checks.Names()) {
		t.Errorf("schema check kinds %v, registry %v", kinds, checks.Names())
	}
}

// schemaKeysAt walks path, where a numeric element indexes an array.
func schemaKeysAt(t *testing.T, schema map[string]any, path []string) []string {
	t.Helper()
	var node any = schema
	for i, p := range path {
		if arr, ok := node.([]any); ok {
			idx := int(p[0] - '0')
			node = arr[idx]
			continue
		}
		if i == len(path)-1 {
			return schemaKeys(t, node, p)
		}
		node = node.(map[string]any)[p]
	}
	return schemaKeys(t, node)
}

// The defaults the schema shows editors are the ones the code applies.
func TestSchemaDefaults(t *testing.T) {
	_, schema := compileSchema(t)
	def := func(path ...string) any {
		var node any = schema
		for _, p := range path {
			node = node.(map[string]any)[p]
		}
		return node.(map[string]any)["default"]
	}
	for _, tc := range []struct {
		got  any
		want any
	}{
		{def("properties", "defaults", "properties", "interval"), site.DefaultInterval.String()},
		{def("properties", "defaults", "properties", "timeout"), site.DefaultTimeout.String()},
		{def("properties", "defaults", "properties", "ranges"), string(site.DefaultRanges)},
		{def("properties", "scheduler", "properties", "max_in_flight"), float64(site.DefaultMaxInFlight)},
		{def("properties", "scheduler", "properties", "max_in_flight_per_host"), float64(site.DefaultMaxInFlightPerHost)},
		{def("properties", "scheduler", "properties", "failures_before_down"), float64(site.DefaultFailuresBeforeDown)},
		{def("properties", "scheduler", "properties", "jitter"), float64(0)},
		{def("properties", "scheduler", "properties", "failing_interval"), "0s"},
	} {
		if tc.got != tc.want {
			t.Errorf("schema default %v, code default %v", tc.got, tc.want)
		}
	}
}
