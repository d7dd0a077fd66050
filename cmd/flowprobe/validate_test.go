package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// A bad option shared by several flows is one error, and the options of a
// kind no flow uses are checked too.
func TestValidateOptionErrorsOnce(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "site.yml")
	writeFile(t, cfg, `products:
  - name: sios-lifekeeper
    self: node
    options:
      tcp: {password: x}
      ntp: {bogus: 1}
    roles:
      node: {hosts: [192.0.2.1, 192.0.2.2]}
`)
	code, _, stderr := runCLI(t, "validate", cfg)
	if code != exitUsage {
		t.Fatalf("exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	want := []string{
		cfg + ": FAILED",
		cfg + `:5: product sios-lifekeeper: tcp options: unknown option "password" (known: expect, responder, send); tcp takes no such secret, and secrets are only given as <option>_file or <option>_env`,
		cfg + `:6: product sios-lifekeeper: ntp options: unknown option "bogus" (known: max_offset, max_root_distance, version)`,
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("stderr:\n%s\nwant:\n%s", stderr, strings.Join(want, "\n"))
	}
}
