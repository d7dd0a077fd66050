package checks

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// Every registered kind has its reference section in docs/checks.md, and
// the docs describe no kind that does not exist.
func TestEveryKindIsDocumented(t *testing.T) {
	b, err := os.ReadFile("../docs/checks.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	documented := map[string]bool{}
	for _, line := range strings.Split(doc, "\n") {
		if name, ok := strings.CutPrefix(line, "## "); ok {
			documented[strings.TrimSpace(name)] = true
		}
	}
	for _, name := range Names() {
		if !documented[name] {
			t.Errorf("docs/checks.md has no \"## %s\" section", name)
		}
		delete(documented, name)
	}
	for name := range documented {
		t.Errorf("docs/checks.md documents %q, which is not a registered check kind", name)
	}
}

// Every value metric a kind registers has its row in docs/metrics.md,
// naming every kind that reports it, and the table lists no other value.
func TestEveryValueIsDocumented(t *testing.T) {
	b, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(b), "### Protocol values")
	if !ok {
		t.Fatal(`docs/metrics.md has no "### Protocol values" section`)
	}
	table, _, _ = strings.Cut(table, "\n### ")
	documented := map[string][]string{} // value name → kinds in the check column
	for _, line := range strings.Split(table, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 {
			continue
		}
		name, isMetric := strings.CutPrefix(strings.Trim(strings.TrimSpace(cells[1]), "`"), "flowprobe_")
		if !isMetric {
			continue
		}
		var kinds []string
		for _, k := range strings.Split(cells[2], ",") {
			kinds = append(kinds, strings.TrimSpace(k))
		}
		slices.Sort(kinds)
		documented[name] = kinds
	}
	want := map[string][]string{}
	for _, name := range Names() {
		k, _ := Lookup(name)
		for _, v := range k.Values {
			if v.Help == "" {
				t.Errorf("kind %s: value %s has no HELP text", name, v.Name)
			}
			want[v.Name] = append(want[v.Name], name)
		}
	}
	for v, kinds := range want {
		slices.Sort(kinds)
		got, ok := documented[v]
		switch {
		case !ok:
			t.Errorf("docs/metrics.md does not list flowprobe_%s", v)
		case !slices.Equal(got, kinds):
			t.Errorf("docs/metrics.md: flowprobe_%s is reported by %v, the table says %v", v, kinds, got)
		}
		delete(documented, v)
	}
	for v := range documented {
		t.Errorf("docs/metrics.md lists flowprobe_%s, which no check kind registers", v)
	}
}
