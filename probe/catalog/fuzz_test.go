package catalog

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// FuzzLoadFS: any bytes given as a catalog file load into a product or end
// in errors that each name the file — never a panic.
func FuzzLoadFS(f *testing.F) {
	for _, glob := range []string{"*.yaml", "testdata/good/*/*.yaml", "testdata/bad/*.yaml"} {
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
	f.Fuzz(func(t *testing.T, data []byte) {
		cat, err := LoadFS(fstest.MapFS{"fuzz.yaml": {Data: data}})
		if err != nil {
			for line := range strings.SplitSeq(err.Error(), "\n") {
				if !strings.HasPrefix(line, "fuzz.yaml") {
					t.Fatalf("an error that does not name the file: %q", line)
				}
			}
			return
		}
		for _, p := range cat.Products {
			if len(p.Flows) == 0 {
				t.Fatalf("product %s loaded without flows", p.Name)
			}
		}
	})
}
