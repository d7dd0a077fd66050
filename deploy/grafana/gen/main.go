// Command gen writes flowprobe's Grafana dashboard, deploy/grafana/flowprobe.json,
// from Go with the Grafana Foundation SDK.
//
// It is a module of its own so the SDK stays out of the daemon's go.mod.
// Run it with `make dashboard` (or `go generate ./deploy/grafana/gen` from the
// repository root, or `go run .` here); a test in deploy/ fails when the
// committed file is not what this program writes.
package main

//go:generate go run . -o ../flowprobe.json

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

func main() { os.Exit(run()) }

func run() int {
	out := flag.String("o", "../flowprobe.json", "file to write the dashboard to (- for standard output)")
	flag.Parse()
	b, err := render()
	if err != nil {
		slog.Error("build dashboard", "err", err)
		return 1
	}
	if *out == "-" {
		_, err = os.Stdout.Write(b)
	} else {
		err = os.WriteFile(*out, b, 0o644)
	}
	if err != nil {
		slog.Error("write dashboard", "err", err)
		return 1
	}
	return 0
}

// render returns the dashboard as indented JSON with a final newline,
// characters such as → and < written as they are.
func render() ([]byte, error) {
	d, err := build().Build()
	if err != nil {
		return nil, fmt.Errorf("build dashboard: %w", err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return nil, fmt.Errorf("encode dashboard: %w", err)
	}
	return buf.Bytes(), nil
}

// build is the whole dashboard: variables, then the panels row by row.
func build() *dashboard.DashboardBuilder {
	d := dashboard.NewDashboardBuilder("flowprobe — network flows").
		Uid("flowprobe").
		Tags([]string{"flowprobe", "network"}).
		Timezone("browser").
		Version(1).
		Refresh("30s").
		Time("now-6h", "now").
		Editable().
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		WithVariable(dashboard.NewDatasourceVariableBuilder("datasource").
			Label("Data source").
			Type("prometheus"))
	for _, v := range variables() {
		d.WithVariable(v)
	}
	for _, p := range panels() {
		d.WithPanel(p)
	}
	return d
}
