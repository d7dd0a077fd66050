package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/exporter-toolkit/web"

	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/scheduler"
)

// syncBuffer is a log writer the test can read while serve writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// served is a serve running in-process on 127.0.0.1:0.
type served struct {
	base     string
	recorded chan scheduler.Status
	hup      chan os.Signal
	logs     *syncBuffer
	exit     chan int
	cancel   context.CancelFunc
}

// startServe runs serve and returns once its first configuration runs.
// before, when set, is called once HTTP is served but before any target is
// scheduled.
func startServe(t *testing.T, o *serveOptions, before func(base string)) *served {
	t.Helper()
	noSystemd, webConfig := false, ""
	if o.web != nil && o.web.WebConfigFile != nil {
		webConfig = *o.web.WebConfigFile
	}
	o.web = &web.FlagConfig{WebListenAddresses: &[]string{"127.0.0.1:0"}, WebSystemdSocket: &noSystemd, WebConfigFile: &webConfig}
	s := &served{recorded: make(chan scheduler.Status, 1000), hup: make(chan os.Signal), logs: &syncBuffer{}, exit: make(chan int, 1)}
	o.hup = s.hup
	o.recorded = func(st scheduler.Status) { s.recorded <- st }
	baseCh := make(chan string, 1)
	o.listening = func(addrs []net.Addr) {
		base := "http://" + addrs[0].String()
		if before != nil {
			before(base)
		}
		baseCh <- base
	}
	started := make(chan struct{})
	o.started = func() { close(started) }
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() { s.exit <- serve(ctx, o, s.logs) }()
	select {
	case s.base = <-baseCh:
	case code := <-s.exit:
		t.Fatalf("serve exited with %d before listening:\n%s", code, s.logs)
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not start listening")
	}
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not start its first configuration")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-s.exit:
			if code != exitOK {
				t.Errorf("serve exited with %d on shutdown", code)
			}
		case <-time.After(10 * time.Second):
			t.Error("serve did not shut down")
		}
	})
	return s
}

func httpDo(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestServeDemo(t *testing.T) {
	var notReady string
	s := startServe(t, &serveOptions{demo: true}, func(base string) {
		_, notReady = httpDo(t, "GET", base+"/-/ready")
	})
	if notReady != "Not ready: 0 of 0 targets finished their first run.\n" {
		t.Errorf("/-/ready before scheduling = %q", notReady)
	}
	// The demo plans the same targets every time; a second instance of its
	// peers tells how many.
	d, err := startDemo()
	if err != nil {
		t.Fatal(err)
	}
	_, plan, err := d.plan()
	d.Close()
	if err != nil {
		t.Fatal(err)
	}
	// Every demo target finishes a first run within an interval and a timeout.
	seen := map[string]scheduler.Status{} // host flow -> status
	failsafe := time.After(2 * (demoInterval + demoTimeout))
	for len(seen) < len(plan.Targets) {
		select {
		case st := <-s.recorded:
			seen[st.Target.Host+" "+st.Target.Flow] = st
		case <-failsafe:
			t.Fatalf("only %d of %d demo targets ran: %v\n%s", len(seen), len(plan.Targets), seen, s.logs)
		}
	}
	if code, body := httpDo(t, "GET", s.base+"/-/ready"); code != 200 || body != "Ready.\n" {
		t.Fatalf("/-/ready after the first round = %d %q", code, body)
	}

	// node-a answers everything; node-b is half installed; the GUI client
	// has a silent UDP peer and an open port that must be blocked.
	want := map[string]string{ // host flow -> outcome; every other target is ok
		"127.0.0.3 lkpolicy":         "service_timeout",
		"127.0.0.3 data-replication": "refused",
		"127.0.0.4 demo-syslog":      "no_response",
		"127.0.0.4 demo-telnet-deny": "ok",
	}
	_, metrics := httpDo(t, "GET", s.base+"/metrics")
	hosts := map[string]bool{}
	for key, st := range seen {
		hosts[st.Target.Host] = true
		outcome, success := want[key], "0"
		switch {
		case st.Target.Check == "icmp":
			// Without a ping socket or CAP_NET_RAW, local_error is the
			// true outcome.
			if outcome = st.Result.Outcome.String(); outcome != "ok" && outcome != "local_error" {
				t.Errorf("demo target %s: %v (%v), want ok or local_error", key, outcome, st.Result.Err)
			}
		case outcome == "":
			outcome = "ok"
		}
		if st.Result.Outcome.String() != outcome {
			t.Errorf("demo target %s: %v (%v), want %s", key, st.Result.Outcome, st.Result.Err, outcome)
		}
		if st.Result.Success != (outcome == "ok" && st.Target.Expect != probe.ExpectDeny) {
			t.Errorf("demo target %s: success %v", key, st.Result.Success)
		}
		if st.Result.Success {
			success = "1"
		}
		if st.Target.Port < 1024 && st.Target.Protocol != probe.ICMP {
			t.Errorf("demo target %s probes the privileged port %d", key, st.Target.Port)
		}
		port := ""
		if st.Target.Port != 0 {
			port = fmt.Sprint(st.Target.Port)
		}
		series := fmt.Sprintf(`flowprobe_check_success{check="%s",destination="%s",flow="%s",port="%s",product="sios-lifekeeper",protocol="%s",site="demo",source="%s",target="%s"} %s`,
			st.Target.Check, st.Target.Destination, st.Target.Flow, port, st.Target.Protocol, st.Target.Source, st.Target.Address(), success)
		if !strings.Contains(metrics, series+"\n") {
			t.Errorf("/metrics lacks %s", series)
		}
		if key == "127.0.0.2 comm-path" && st.Result.Details["responder"] != "true" {
			t.Errorf("comm-path details %v, want the responder's", st.Result.Details)
		}
	}
	if len(hosts) != len(demoHosts) {
		t.Errorf("demo probes the hosts %v, want the %d of demoHosts", hosts, len(demoHosts))
	}
	for _, m := range []string{"flowprobe_build_info{", fmt.Sprintf("flowprobe_targets{site=\"demo\"} %d\n", len(plan.Targets)), "flowprobe_config_last_reload_successful{site=\"demo\"} 1\n", "flowprobe_scheduler_lag_seconds_count{site=\"demo\"}"} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	if _, page := httpDo(t, "GET", s.base+"/"); !strings.Contains(page, "<h2>sios-lifekeeper") || !strings.Contains(page, "node → node") || !strings.Contains(page, `class="flowmap"`) {
		t.Errorf("status page lacks the demo's flow matrix or map:\n%s", page)
	}
	if logs := s.logs.String(); !strings.Contains(logs, `msg="Status page" url=`+s.base+"/") || !strings.Contains(logs, `msg="Flow down" flow=sios-lifekeeper/data-replication`) {
		t.Errorf("logs lack the status page URL or the data-replication flow going down:\n%s", logs)
	}
}

const goodSite = `site: lab
products:
  - name: sios-lifekeeper
    self: tester
    interval: 1h
    timeout: 2s
    extra_flows:
      - id: local
        source: tester
        destination: local
        hostname: 127.0.0.1
        protocol: tcp
        ports: [%d]
        check: tcp
`

func TestServeReloadKeepsTheRunningConfigOnError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	path := filepath.Join(t.TempDir(), "site.yml")
	if err := os.WriteFile(path, fmt.Appendf(nil, goodSite, port), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, &serveOptions{configFile: path, lifecycle: true}, nil)
	metric := func(name string) string {
		_, body := httpDo(t, "GET", s.base+"/metrics")
		for line := range strings.SplitSeq(body, "\n") {
			if strings.HasPrefix(line, name+"{") {
				return line[strings.LastIndexByte(line, ' ')+1:]
			}
		}
		return "absent"
	}
	if got := metric("flowprobe_targets"); got != "1" {
		t.Fatalf("flowprobe_targets = %s, want 1", got)
	}
	if err := os.WriteFile(path, []byte("site: lab\nprodcts: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, body := httpDo(t, "POST", s.base+"/-/reload")
	if code != 500 || !strings.Contains(body, "site.yml:2") || !strings.Contains(body, "prodcts") {
		t.Fatalf("POST /-/reload with a bad config = %d %q, want 500 naming the file, line and key", code, body)
	}
	if got := metric("flowprobe_config_last_reload_successful"); got != "0" {
		t.Errorf("reload_successful = %s after a bad reload, want 0", got)
	}
	if got := metric("flowprobe_targets"); got != "1" {
		t.Errorf("flowprobe_targets = %s after a bad reload, want the running 1", got)
	}

	// SIGHUP with the config fixed and a second flow: the second send is
	// taken only once the first reload finished.
	two := fmt.Sprintf(goodSite, port) + "      - id: local2\n        source: tester\n        destination: local\n        hostname: 127.0.0.1\n        protocol: tcp\n        ports: [" + fmt.Sprint(port) + "]\n        check: tls\n"
	if err := os.WriteFile(path, []byte(two), 0o600); err != nil {
		t.Fatal(err)
	}
	s.hup <- os.Interrupt
	s.hup <- os.Interrupt
	if got := metric("flowprobe_config_last_reload_successful"); got != "1" {
		t.Errorf("reload_successful = %s after SIGHUP with a good config, want 1", got)
	}
	if got := metric("flowprobe_targets"); got != "2" {
		t.Errorf("flowprobe_targets = %s after SIGHUP, want 2", got)
	}
}

func TestServeNeedsAConfigOrDemo(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"serve"}, &stdout, &stderr); code != exitUsage {
		t.Fatalf("serve without config: exit %d, want %d", code, exitUsage)
	}
	if !strings.Contains(stderr.String(), "flowprobe serve --config.file=site.yml") || !strings.Contains(stderr.String(), "flowprobe serve --demo") {
		t.Errorf("stderr %q does not say how to start", stderr.String())
	}

	path := filepath.Join(t.TempDir(), "site.yml")
	if err := os.WriteFile(path, []byte("products: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stderr.Reset()
	if code := run([]string{"serve", "--config.file=" + path, "--web.listen-address=127.0.0.1:0"}, &stdout, &stderr); code != exitUsage {
		t.Fatalf("serve with a bad config: exit %d, want %d; stderr:\n%s", code, exitUsage, stderr.String())
	}
	if !strings.Contains(stderr.String(), "site.yml") {
		t.Errorf("stderr %q does not name the config file", stderr.String())
	}
}

// webConfigBasicAuth protects every route with the user "prom" and the
// password "s3cret" (bcrypt, cost 4).
const webConfigBasicAuth = "basic_auth_users:\n  prom: $2a$04$AHKFvOVmvxy8EWcb3KFxtuJd9dZyLDsNM/qW0NFgNwYDgPZWIE94y\n"

// The liveness and readiness probes of the shipped Kubernetes manifests
// carry no credentials: they must pass on an instance with basic auth,
// while everything else stays protected.
func TestServeProbesNeedNoAuthOtherRoutesDo(t *testing.T) {
	wc := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(wc, []byte(webConfigBasicAuth), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, &serveOptions{demo: true, lifecycle: true, web: &web.FlagConfig{WebConfigFile: &wc}}, nil)
	for _, path := range []string{"/-/healthy", "/-/ready"} {
		if code, body := httpDo(t, "GET", s.base+path); code != 200 && code != 503 {
			t.Errorf("GET %s without credentials = %d %q, want the probe's answer", path, code, body)
		}
	}
	for _, r := range []struct{ method, path string }{{"GET", "/metrics"}, {"GET", "/"}, {"GET", "/api/v1/results"}, {"POST", "/-/reload"}, {"POST", "/-/healthy"}} {
		if code, _ := httpDo(t, r.method, s.base+r.path); code != http.StatusUnauthorized {
			t.Errorf("%s %s without credentials = %d, want 401", r.method, r.path, code)
		}
	}
	req, err := http.NewRequest("GET", s.base+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("prom", "s3cret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /metrics with credentials = %d, want 200", resp.StatusCode)
	}
}

// Without --web.enable-lifecycle, POST /-/reload is refused with a message
// naming the flag, and nothing is reloaded; SIGHUP still reloads.
func TestServeReloadOverHTTPNeedsTheLifecycleFlag(t *testing.T) {
	s := startServe(t, &serveOptions{demo: true}, nil)
	code, body := httpDo(t, "POST", s.base+"/-/reload")
	if code != http.StatusForbidden || !strings.Contains(body, "--web.enable-lifecycle") {
		t.Fatalf("POST /-/reload without --web.enable-lifecycle = %d %q, want 403 naming the flag", code, body)
	}
	if n := strings.Count(s.logs.String(), "Configuration loaded"); n != 1 {
		t.Errorf("a refused POST /-/reload reloaded:\n%s", s.logs)
	}
	s.hup <- os.Interrupt
	s.hup <- os.Interrupt // taken only once the first reload finished
	if n := strings.Count(s.logs.String(), "Configuration loaded"); n < 2 {
		t.Errorf("%d configuration loads after a refused POST and SIGHUP, want the SIGHUP's:\n%s", n, s.logs)
	}
}
