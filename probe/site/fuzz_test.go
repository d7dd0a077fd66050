package site_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowprobe/flowprobe/checks"
	"github.com/flowprobe/flowprobe/probe/catalog"
	"github.com/flowprobe/flowprobe/probe/site"
)

// FuzzCheckConfig: any bytes given as a site config end in a config and a
// plan, or in errors that each name the file — never a panic, and never a
// plan past the target ceiling. Extra catalog files named by the input are
// not read: a fuzzer must not walk the file system.
func FuzzCheckConfig(f *testing.F) {
	for _, glob := range []string{"testdata/config/*/*.yml", "../../deploy/examples/*.yml"} {
		files, err := filepath.Glob(glob)
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	cat, err := catalog.Load()
	if err != nil {
		f.Fatal(err)
	}
	noCatalogs := func(c *site.Config) {
		c.Catalogs = nil
		if c.MaxTargets == 0 || c.MaxTargets > 5000 {
			c.MaxTargets = 5000
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, res, err := site.CheckConfig(cat.Products, "fuzz.yml", data, checks.Binder{}, noCatalogs)
		if err != nil {
			for line := range strings.SplitSeq(err.Error(), "\n") {
				if !strings.HasPrefix(line, "fuzz.yml") {
					t.Fatalf("an error that does not name the file: %q", line)
				}
			}
			return
		}
		if n := len(res.Targets); n > 5000 {
			t.Fatalf("planned %d targets past the ceiling", n)
		}
	})
}
