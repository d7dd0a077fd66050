package site

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// CheckConfig reports the errors of the file and those that need the
// catalog or the check registry in one run.
func TestCheckConfigAllErrorsAtOnce(t *testing.T) {
	cat := loadDemo(t)
	_, _, err := CheckConfig(cat.Products, "site.yml", []byte(`
products:
  - name: demo
    self: appliance
    interval: soon
    exclude: [gone]
    roles:
      dc:
        hosts: [dc1.example.org]
        password: secret
  - name: nothing-like-it
`), fakeBinder{})
	diffLines(t, "errors", errLines(err), []string{
		`site.yml:5: product demo: interval "soon" is not a duration such as 30s or 1m`,
		`site.yml:6: product demo: exclude: unknown flow "gone" (flows of demo: ldap, ldaps, hv-api, hv-range, hv-dynamic, hv-ping, console, dns, updates)`,
		`site.yml:10: product demo: role dc: unknown key "password" in a role (known: check, hosts, interval, options, ports, ranges, responder, timeout)`,
		`site.yml:11: unknown product "nothing-like-it" (known: demo)`,
	})

	// Every bad file of the test tables, whatever is wrong with it, gives
	// at least the errors ParseConfig and Plan find on their own.
	files, _ := filepath.Glob("testdata/config/bad/*.yml")
	more, _ := filepath.Glob("testdata/config/plan-bad/*.yml")
	for _, file := range append(files, more...) {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = CheckConfig(cat.Products, file, data, fakeBinder{})
		got := errLines(err)
		want := slices.Clone(wantBad[filepath.Base(file)])
		if filepath.Base(filepath.Dir(file)) == "plan-bad" {
			want = wantPlanBad[filepath.Base(file)]
		}
		for _, w := range want {
			if w = replaceFile(w, file); !slices.Contains(got, w) {
				t.Errorf("%s: missing %q in %q", file, w, got)
			}
		}
	}
}

func replaceFile(s, file string) string {
	if len(s) >= 4 && s[:4] == "FILE" {
		return file + s[4:]
	}
	return s
}
