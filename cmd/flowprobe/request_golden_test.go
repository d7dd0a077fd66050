package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/version"

	"github.com/flowprobe/flowprobe/probe/catalog"
	"github.com/flowprobe/flowprobe/probe/report"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files of the firewall requests")

// The firewall request of each example config, as a change ticket gets it
// (markdown), is kept in testdata/request-<example>.md.
func TestExampleFirewallRequestsGolden(t *testing.T) {
	cat, err := catalog.Load()
	if err != nil {
		t.Fatal(err)
	}
	examples, err := filepath.Glob("../../deploy/examples/*.yml")
	if err != nil || len(examples) < 4 {
		t.Fatalf("examples %v %v", examples, err)
	}
	t.Setenv("FLOWPROBE_AD_PASSWORD", "not-a-real-password") // the Citrix example reads it
	saved := version.Version
	version.Version = "0.0.0-test"
	defer func() { version.Version = saved }()
	for _, ex := range examples {
		name := strings.TrimSuffix(filepath.Base(ex), ".yml")
		t.Run(name, func(t *testing.T) {
			cfg, res, err := planFile(cat, ex)
			if err != nil {
				t.Fatal(err)
			}
			h := requestHeader(cat, cfg, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
			h.Config = "deploy/examples/" + filepath.Base(ex)
			var b bytes.Buffer
			if err := report.WriteRules(&b, "markdown", h, res.Rules(), res.Skipped); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "request-"+name+".md")
			if *updateGolden {
				if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
			}
			if !bytes.Equal(b.Bytes(), want) {
				t.Errorf("firewall request of %s differs from %s (go test -update rewrites it):\n%s", ex, golden, b.String())
			}
		})
	}
}
