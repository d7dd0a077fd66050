package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// benchCheckSite starts listeners on 127.0.0.1 that accept and close, and
// writes a site config of n tcp targets spread over them (one host, so the
// per-host cap of 4 is the concurrency, as in `make bench`).
func benchCheckSite(b *testing.B, n, listeners int) string {
	b.Helper()
	ports := make([]int, listeners)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "site: bench\nmax_targets: %d\nscheduler: {max_in_flight: 256, max_in_flight_per_host: 4}\n", n+1)
	cfg.WriteString("products:\n  - name: sios-lifekeeper\n    self: tester\n    interval: 1h\n    timeout: 5s\n    extra_flows:\n")
	for i := 0; i < n; i += listeners {
		fmt.Fprintf(&cfg, "      - {id: bench-%d, source: tester, destination: bench, hostname: 127.0.0.1, protocol: tcp, check: tcp, ports: [", i/listeners)
		for j := range min(listeners, n-i) {
			if j > 0 {
				cfg.WriteByte(',')
			}
			fmt.Fprint(&cfg, ports[j])
		}
		cfg.WriteString("]}\n")
	}
	path := filepath.Join(b.TempDir(), "site.yml")
	if err := os.WriteFile(path, []byte(cfg.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkCheckCommand runs `flowprobe check -o json` over 10,000 tcp
// targets on loopback, planning and report included: what `make bench`
// compares with a plain dial loop of the same concurrency.
func BenchmarkCheckCommand(b *testing.B) {
	const n = 10_000
	site := benchCheckSite(b, n, 500)
	out := filepath.Join(b.TempDir(), "check.json")
	b.ReportAllocs()
	for b.Loop() {
		if code := run([]string{"check", "--config.file", site, "--progress=never", "-o", "json", "--output.file", out}, io.Discard, io.Discard); code != exitOK {
			b.Fatalf("exit %d", code)
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "checks/s")
}
