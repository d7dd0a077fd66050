package checks

import (
	"os"
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
