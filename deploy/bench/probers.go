package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// A prober is one program under test: how to start it on a set of
// targets at an interval, and where its metrics are.
type prober struct {
	name string
	// start writes the prober's config under dir and returns the command of
	// the process whose CPU and memory are measured, an optional helper
	// (the driver that plays Prometheus) and the URL of its /metrics.
	start func(dir string, w workload) (main, helper []string, metrics string, err error)
}

// workload is what a prober is asked to do: check these listeners every
// interval (or, for the loops, at rate).
type workload struct {
	tcp, tls    []int
	interval    time.Duration
	timeout     time.Duration
	rate        float64
	count       int // connections the loops make at most
	concurrency int
	maxTime     time.Duration
	// memLimit, when set, is the GOMEMLIMIT flowprobe serve runs with, as
	// docs/deploy.md tells operators of tens of thousands of targets.
	memLimit string
}

func (w workload) targets() int { return len(w.tcp) + len(w.tls) }

// timeoutFor is the deadline of one check at interval iv: half of it, at most 1s.
func timeoutFor(iv time.Duration) time.Duration { return min(iv/2, time.Second) }

// flowprobeConfig is a site config whose extra flows cover the ports: one
// flow per check kind and chunk of ports, all to 127.0.0.1.
func flowprobeConfig(w workload) string {
	var b strings.Builder
	fmt.Fprintf(&b, "site: bench\nmax_targets: %d\n", w.targets()+1)
	fmt.Fprintf(&b, "scheduler: {max_in_flight: %d, max_in_flight_per_host: %d}\n", max(256, w.concurrency), w.concurrency)
	fmt.Fprintf(&b, "products:\n  - name: sios-lifekeeper\n    self: tester\n    interval: %s\n    timeout: %s\n    extra_flows:\n", w.interval, w.timeout)
	flows := func(kind, options string, ports []int) {
		// A flow lists a port once; ports repeat round-robin, so any run
		// of at most the distinct ports is a valid list.
		distinct := map[int]bool{}
		for _, p := range ports {
			distinct[p] = true
		}
		chunk := min(1000, len(distinct))
		for i := 0; i < len(ports); i += chunk {
			fmt.Fprintf(&b, "      - {id: bench-%s-%d, source: tester, destination: bench, hostname: 127.0.0.1, protocol: tcp, check: %s%s, ports: [", kind, i/chunk, kind, options)
			for j, p := range ports[i:min(i+chunk, len(ports))] {
				if j > 0 {
					b.WriteByte(',')
				}
				fmt.Fprint(&b, p)
			}
			b.WriteString("]}\n")
		}
	}
	flows("tcp", "", w.tcp)
	flows("tls", ", options: {insecure_skip_verify: true}", w.tls)
	return b.String()
}

func writeFile(dir, name, data string) (string, error) {
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		return "", fmt.Errorf("write %s: %w", name, err)
	}
	return path, nil
}

// loopArgs are the flags of `bench floor` and `bench drive` for w.
func loopArgs(w workload, portsFile string) []string {
	args := []string{"-ports-file", portsFile, "-rate", fmt.Sprint(w.rate), "-count", fmt.Sprint(w.count),
		"-concurrency", fmt.Sprint(w.concurrency), "-max-time", w.maxTime.String()}
	switch {
	case len(w.tls) == 0:
		args = append(args, "-tcp-only")
	case len(w.tcp) == 0:
		args = append(args, "-tls-only")
	}
	return args
}

func floorProber(self, portsFile string) prober {
	return prober{name: "raw Go floor", start: func(_ string, w workload) ([]string, []string, string, error) {
		return append([]string{self, "floor"}, loopArgs(w, portsFile)...), nil, "", nil
	}}
}

func flowprobeProber(bin string) prober {
	return prober{name: "flowprobe serve", start: func(dir string, w workload) ([]string, []string, string, error) {
		port, err := freePort()
		if err != nil {
			return nil, nil, "", err
		}
		cfg, err := writeFile(dir, "flowprobe.yml", flowprobeConfig(w))
		if err != nil {
			return nil, nil, "", err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		if w.memLimit != "" {
			// env execs in place: the measured process is flowprobe.
			return []string{"/usr/bin/env", "GOMEMLIMIT=" + w.memLimit, bin, "serve", "--config.file=" + cfg, "--web.listen-address=" + addr, "--log.level=error"},
				nil, "http://" + addr + "/metrics", nil
		}
		return []string{bin, "serve", "--config.file=" + cfg, "--web.listen-address=" + addr, "--log.level=error"},
			nil, "http://" + addr + "/metrics", nil
	}}
}

const blackboxConfig = `modules:
  tcp_connect:
    prober: tcp
    timeout: %[1]s
  tls:
    prober: tcp
    timeout: %[1]s
    tcp:
      tls: true
      tls_config: {insecure_skip_verify: true}
`

func blackboxProber(bin, self, portsFile string) prober {
	return prober{name: "blackbox_exporter", start: func(dir string, w workload) ([]string, []string, string, error) {
		port, err := freePort()
		if err != nil {
			return nil, nil, "", err
		}
		cfg, err := writeFile(dir, "blackbox.yml", fmt.Sprintf(blackboxConfig, w.timeout))
		if err != nil {
			return nil, nil, "", err
		}
		base := fmt.Sprintf("http://127.0.0.1:%d", port)
		drive := append([]string{self, "drive", "-url", base}, loopArgs(w, portsFile)...)
		return []string{bin, "--config.file=" + cfg, fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port), "--log.level=error"},
			drive, base + "/metrics", nil
	}}
}

// cloudproberConfig has one TCP probe over the TCP ports and one with a TLS
// handshake over the TLS ports, each target a static endpoint.
func cloudproberConfig(w workload, port int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "host: \"127.0.0.1\"\nport: %d\n", port)
	probe := func(name string, ports []int, extra string) {
		if len(ports) == 0 {
			return
		}
		fmt.Fprintf(&b, "probe {\n  name: %q\n  type: TCP\n  interval_msec: %d\n  timeout_msec: %d\n  targets {\n", name, w.interval.Milliseconds(), w.timeout.Milliseconds())
		for i, p := range ports {
			fmt.Fprintf(&b, "    endpoint { name: \"%s%d\" ip: \"127.0.0.1\" port: %d }\n", name, i, p)
		}
		fmt.Fprintf(&b, "  }\n%s}\n", extra)
	}
	probe("tcp", w.tcp, "")
	probe("tls", w.tls, "  tcp_probe {\n    tls_handshake: true\n    tls_config { disable_cert_validation: true }\n  }\n")
	return b.String()
}

func cloudproberProber(bin string) prober {
	return prober{name: "Cloudprober", start: func(dir string, w workload) ([]string, []string, string, error) {
		port, err := freePort()
		if err != nil {
			return nil, nil, "", err
		}
		cfg, err := writeFile(dir, "cloudprober.cfg", cloudproberConfig(w, port))
		if err != nil {
			return nil, nil, "", err
		}
		return []string{bin, "--config_file=" + cfg, "--cloud_metadata=none", "--disable_sys_metrics"},
			nil, fmt.Sprintf("http://127.0.0.1:%d/metrics", port), nil
	}}
}
