//go:build lab

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/deploy/testlab"
	"github.com/flowprobe/flowprobe/probe"
)

// A real Prometheus scraping the lab stack: how to start and query it,
// and what it holds of flowprobe's metrics.

// promServer is a real Prometheus server scraping one flowprobe.
type promServer struct {
	base string
	logs *syncBuffer
}

// promJob is one more scrape job of Prometheus: a flowprobe at addr.
type promJob struct{ job, addr string }

// startPrometheus runs /usr/bin/prometheus with a 1 s scrape and rule
// evaluation interval and the rules of deploy/prometheus/alerts.yml: job
// "flowprobe" scrapes flowprobeAddr, job "flowprobe-unscrapable" asks the
// same address for a path that does not exist, and each of extra is a job
// of its own.
func startPrometheus(t *testing.T, flowprobeAddr string, extra ...promJob) *promServer {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus not found: deploy/testlab/lab.sh install provides it (Debian package prometheus)")
	}
	dir := t.TempDir()
	rules, err := filepath.Abs(labAlertsYML)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: %s
    static_configs: [{targets: [%q]}]
  - job_name: %s
    metrics_path: /no-metrics-here
    static_configs: [{targets: [%q]}]
`, rules, serveLabJob, flowprobeAddr, serveLabDeadJob, flowprobeAddr)
	for _, j := range extra {
		cfg += fmt.Sprintf("  - job_name: %s\n    static_configs: [{targets: [%q]}]\n", j.job, j.addr)
	}
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := l.Addr().String()
	l.Close()
	p := &promServer{base: "http://" + listen, logs: &syncBuffer{}}
	cmd := exec.Command(bin, "--config.file="+cfgFile, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+listen, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	poll(t, serveLabWait, "prometheus ready", func() (bool, string) {
		select {
		case <-exited:
			t.Fatalf("prometheus exited:\n%s", p.logs)
		default:
		}
		resp, err := labHTTP.Get(p.base + "/-/ready")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	return p
}

// promSample is one element of an instant vector.
type promSample struct {
	Metric map[string]string
	Value  float64
}

// promGet calls an HTTP API endpoint of Prometheus and decodes its data.
func (p *promServer) promGet(path string, q url.Values, data any) error {
	resp, err := labHTTP.Get(p.base + path + "?" + q.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var r struct {
		Status    string          `json:"status"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&r); err != nil {
		return fmt.Errorf("%s: %s: decode: %w", path, resp.Status, err)
	}
	if r.Status != "success" {
		return fmt.Errorf("%s: %s: %s: %s", path, resp.Status, r.ErrorType, r.Error)
	}
	return json.Unmarshal(r.Data, data)
}

// query evaluates expr now through /api/v1/query.
func (p *promServer) query(expr string) ([]promSample, error) {
	var d struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := p.promGet("/api/v1/query", url.Values{"query": {expr}}, &d); err != nil {
		return nil, err
	}
	type point [2]any // [unix time, "value"]
	var raw []struct {
		Metric map[string]string `json:"metric"`
		Value  point             `json:"value"`
	}
	switch d.ResultType {
	case "vector":
		if err := json.Unmarshal(d.Result, &raw); err != nil {
			return nil, err
		}
	case "scalar":
		raw = make([]struct {
			Metric map[string]string `json:"metric"`
			Value  point             `json:"value"`
		}, 1)
		if err := json.Unmarshal(d.Result, &raw[0].Value); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("query %s: result type %s, want an instant vector", expr, d.ResultType)
	}
	out := make([]promSample, len(raw))
	for i, r := range raw {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("query %s: value %v: %w", expr, r.Value[1], err)
		}
		out[i] = promSample{Metric: r.Metric, Value: v}
	}
	return out, nil
}

// mustQuery is query that fails the test on an error.
func (p *promServer) mustQuery(t *testing.T, expr string) []promSample {
	t.Helper()
	s, err := p.query(expr)
	if err != nil {
		t.Fatalf("query %s: %v", expr, err)
	}
	return s
}

// byLabel indexes samples by one label's value; a repeated value is an error.
func byLabel(t *testing.T, expr, label string, samples []promSample) map[string]promSample {
	t.Helper()
	m := map[string]promSample{}
	for _, s := range samples {
		if _, dup := m[s.Metric[label]]; dup {
			t.Errorf("%s: two series with %s=%q", expr, label, s.Metric[label])
		}
		m[s.Metric[label]] = s
	}
	return m
}

// labelSet lists the values of one label over samples, sorted and unique.
func labelSet(samples []promSample, label string) []string {
	var out []string
	for _, s := range samples {
		if !slices.Contains(out, s.Metric[label]) {
			out = append(out, s.Metric[label])
		}
	}
	slices.Sort(out)
	return out
}

// TestLabPrometheusScrapesOutcomes: a real Prometheus scraping flowprobe
// holds the debounced verdict and the one-hot outcome of every flow, with
// the labels of the metric contract: ok for open services, timeout for the
// port the firewall drops, refused for the closed port.
func TestLabPrometheusScrapesOutcomes(t *testing.T) {
	s := startLabStack(t)
	s.waitScraped(t)

	success := byLabel(t, "success", "flow", s.prom.mustQuery(t, `flowprobe_check_success{job="flowprobe"}`))
	counts := byLabel(t, "count", "flow", s.prom.mustQuery(t, `count by (flow) (flowprobe_check_outcome{job="flowprobe"})`))
	sums := byLabel(t, "sum", "flow", s.prom.mustQuery(t, `sum by (flow) (flowprobe_check_outcome{job="flowprobe"})`))
	if len(success) != len(serveLabFlows) {
		t.Errorf("flowprobe_check_success has %d series, want %d: %v", len(success), len(serveLabFlows), success)
	}
	for _, f := range serveLabFlows {
		want := 0.0
		if f.outcome == probe.OutcomeOK {
			want = 1
		}
		if got, ok := success[f.id]; !ok || got.Value != want {
			t.Errorf("flowprobe_check_success{flow=%q} = %v (present %v), want %v", f.id, got.Value, ok, want)
		}
		if counts[f.id].Value != float64(len(probe.Outcomes())) || sums[f.id].Value != 1 {
			t.Errorf("flowprobe_check_outcome{flow=%q}: %v series summing to %v, want one-hot over %d outcomes",
				f.id, counts[f.id].Value, sums[f.id].Value, len(probe.Outcomes()))
		}
	}

	// The series Prometheus stored carry exactly the contract's labels plus
	// the scrape's job and instance.
	instance := strings.TrimPrefix(s.flowprobe, "http://")
	for _, c := range []struct {
		expr string
		want map[string]string
	}{
		{`flowprobe_check_outcome{flow="web-http",outcome="timeout"}`, map[string]string{
			"__name__": "flowprobe_check_outcome", "outcome": "timeout", "check": "http", "destination": "web", "flow": "web-http",
			"port": "80", "protocol": "tcp", "target": testlab.Addr(testlab.HTTPPort)}},
		{`flowprobe_check_outcome{flow="echo",outcome="refused"}`, map[string]string{
			"__name__": "flowprobe_check_outcome", "outcome": "refused", "check": "tcp", "destination": "gateway", "flow": "echo",
			"port": "7", "protocol": "tcp", "target": testlab.Addr(testlab.ClosedTCPPort)}},
		{`flowprobe_check_success{flow="ping"}`, map[string]string{
			"__name__": "flowprobe_check_success", "check": "icmp", "destination": "gateway", "flow": "ping",
			"protocol": "icmp", "target": testlab.ServerAddr}},
	} {
		maps.Copy(c.want, map[string]string{"job": serveLabJob, "instance": instance, "site": "lab", "product": serveLabProduct, "source": serveLabSelf})
		got := s.prom.mustQuery(t, c.expr)
		if len(got) != 1 || !maps.Equal(got[0].Metric, c.want) || got[0].Value != 1 {
			t.Errorf("%s = %v, want one series %v with value 1", c.expr, got, c.want)
		}
	}
	if up := s.prom.mustQuery(t, `up{job="flowprobe"}`); len(up) != 1 || up[0].Value != 1 {
		t.Errorf(`up{job="flowprobe"} = %v, want 1`, up)
	}
}
