package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/probe/report"
)

// checkSite writes a site config whose own flows go to an open and a
// closed port on 127.0.0.1, the closed one optional unless required is set.
func checkSite(t *testing.T, closedRequired bool) (path string, open, closed int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	open = ln.Addr().(*net.TCPAddr).Port
	// A port that was free a moment ago: nothing listens there now.
	cl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed = cl.Addr().(*net.TCPAddr).Port
	cl.Close()
	req := "optional"
	if closedRequired {
		req = "required"
	}
	cfg := fmt.Sprintf(`site: test
products:
  - name: sios-lifekeeper
    self: node
    only: [app-open, app-closed]
    timeout: 2s
    roles:
      app:
        hosts: [127.0.0.1]
    extra_flows:
      - {id: app-open, source: node, destination: app, protocol: tcp, ports: %d, purpose: the open one}
      - {id: app-closed, source: node, destination: app, protocol: tcp, ports: %d, purpose: the closed one, required: %s}
`, open, closed, req)
	path = filepath.Join(t.TempDir(), "site.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, open, closed
}

func TestCheckJSONReportsEveryTarget(t *testing.T) {
	site, open, closed := checkSite(t, true)
	var stdout, stderr bytes.Buffer
	code := run([]string{"check", "--config.file", site, "--output", "json"}, &stdout, &stderr)
	if code != exitFailed {
		t.Fatalf("exit %d, want %d (a required flow is refused); stderr:\n%s", code, exitFailed, stderr.String())
	}
	var reps []map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &reps); err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	got := map[string]map[string]any{}
	for _, r := range reps {
		for _, k := range []string{"flow", "product", "source", "destination", "target", "protocol", "port", "check", "outcome", "success", "duration_seconds", "error"} {
			if _, ok := r[k]; !ok {
				t.Errorf("report lacks %q: %v", k, r)
			}
		}
		got[r["flow"].(string)] = r
	}
	if o := got["app-open"]; o["outcome"] != "ok" || o["success"] != true || o["target"] != fmt.Sprintf("127.0.0.1:%d", open) ||
		o["port"] != float64(open) || o["check"] != "tcp" || o["destination"] != "app" {
		t.Errorf("app-open: %v", o)
	}
	if c := got["app-closed"]; c["outcome"] != "refused" || c["success"] != false || c["error"] == "" || c["port"] != float64(closed) {
		t.Errorf("app-closed: %v", c)
	}
	if !strings.Contains(stderr.String(), "1 passed, 1 failed, 0 skipped") {
		t.Errorf("summary missing from stderr:\n%s", stderr.String())
	}
}

func TestCheckOptionalFlowsFailTheRunOnlyWhenAsked(t *testing.T) {
	site, _, _ := checkSite(t, false)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check", "--config.file", site}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d, want 0: only an optional flow fails\n%s%s", code, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		"✓ app-open", "✗ app-closed", "refused", "(optional)",
		"      the host answered with a refusal: nothing listens on the port, or a firewall REJECTs; start the service or open the flow\n",
		"1 passed, 1 failed, 0 skipped (1 of the failures are optional flows and do not fail the run)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text report lacks %q:\n%s", want, out)
		}
	}
	stdout.Reset()
	if code := run([]string{"check", "--config.file", site, "--fail-optional"}, &stdout, &stderr); code != exitFailed {
		t.Fatalf("exit %d with --fail-optional, want 1", code)
	}
}

// junitSuites reads the JUnit fields a CI system relies on.
type junitSuites struct {
	Tests    int `xml:"tests,attr"`
	Failures int `xml:"failures,attr"`
	Suites   []struct {
		Cases []junitCase `xml:"testcase"`
	} `xml:"testsuite"`
}

type junitCase struct {
	Name      string `xml:"name,attr"`
	Classname string `xml:"classname,attr"`
	Failure   *struct {
		Type string `xml:"type,attr"`
		Text string `xml:",chardata"`
	} `xml:"failure"`
}

func TestCheckJUnit(t *testing.T) {
	site, _, _ := checkSite(t, true)
	file := filepath.Join(t.TempDir(), "junit.xml")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check", "--config.file", site, "--output", "junit", "--output.file", file}, &stdout, &stderr); code != exitFailed {
		t.Fatalf("exit %d, want 1\n%s", code, stderr.String())
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var suites junitSuites
	if err := xml.Unmarshal(b, &suites); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if suites.Tests != 2 || suites.Failures != 1 || len(suites.Suites) != 1 {
		t.Fatalf("tests=%d failures=%d suites=%d:\n%s", suites.Tests, suites.Failures, len(suites.Suites), b)
	}
	var failed *junitCase
	for i, c := range suites.Suites[0].Cases {
		if c.Failure != nil {
			failed = &suites.Suites[0].Cases[i]
		}
	}
	if failed == nil || !strings.HasPrefix(failed.Name, "app-closed ") || failed.Failure.Type != "refused" ||
		failed.Classname != "sios-lifekeeper.app" || !strings.Contains(failed.Failure.Text, "connection refused") {
		t.Errorf("failed case: %+v", failed)
	}
	if stdout.Len() != 0 {
		t.Errorf("with --output.file nothing goes to stdout, got:\n%s", stdout.String())
	}
}

func TestCheckMarkdown(t *testing.T) {
	site, _, _ := checkSite(t, true)
	var stdout, stderr bytes.Buffer
	run([]string{"check", "--config.file", site, "--output", "markdown"}, &stdout, &stderr)
	out := stdout.String()
	for _, want := range []string{
		"### SIOS LifeKeeper for Linux → app",
		"| | flow | source | target | protocol | check | outcome | latency | what it means |",
		"| ✗ | app-closed | node | 127.0.0.1:",
		"**1 passed, 1 failed, 0 skipped**",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("markdown lacks %q:\n%s", want, out)
		}
	}
}

func TestCheckFromFlagsAlone(t *testing.T) {
	var stdout, stderr bytes.Buffer
	// ICMP to loopback needs no listener; only lkping is selected.
	code := run([]string{"check", "--product", "sios-lifekeeper", "--self", "node", "--host", "node=127.0.0.1",
		"--flow", "lkping", "--timeout", "2s", "--output", "json"}, &stdout, &stderr)
	var reps []report.Result
	if err := json.Unmarshal(stdout.Bytes(), &reps); err != nil {
		t.Fatalf("%v\n%s%s", err, stdout.String(), stderr.String())
	}
	if len(reps) != 1 || reps[0].Flow != "lkping" || reps[0].Check != "icmp" || reps[0].Target != "127.0.0.1" {
		t.Fatalf("reports: %+v", reps)
	}
	want := map[bool]int{true: exitOK, false: exitFailed}[reps[0].Success]
	if reps[0].Outcome == probe.OutcomeLocalError { // no ICMP permission here
		want = exitLocal
	}
	if code != want {
		t.Errorf("exit %d for success=%v, outcome %v", code, reps[0].Success, reps[0].Outcome)
	}
}

func TestCheckUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"check"}, "give --config.file, or --product"},
		{[]string{"check", "--product", "nope", "--self", "x"}, "nope"},
		{[]string{"check", "--config.file", "/nonexistent/site.yml"}, "/nonexistent/site.yml"},
		{[]string{"check", "--config.file", "x.yml", "--product", "sios-lifekeeper"}, "exclude each other"},
		{[]string{"check", "--output", "yaml"}, "yaml"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(tc.args, &stdout, &stderr); code != exitUsage {
			t.Errorf("%v: exit %d, want 2", tc.args, code)
		}
		if !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: stderr lacks %q:\n%s", tc.args, tc.want, stderr.String())
		}
	}
}

func TestCheckSelectsFlowsOfAConfig(t *testing.T) {
	site, _, _ := checkSite(t, true)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check", "--config.file", site, "--flow", "app-open", "--output", "json"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d, want 0: only the open flow is selected\n%s", code, stderr.String())
	}
	var reps []report.Result
	if err := json.Unmarshal(stdout.Bytes(), &reps); err != nil || len(reps) != 1 || reps[0].Flow != "app-open" {
		t.Fatalf("reports %+v, err %v", reps, err)
	}
	stdout.Reset()
	if code := run([]string{"check", "--config.file", site, "--exclude", "app-open", "--output", "json"}, &stdout, &stderr); code != exitFailed {
		t.Fatalf("exit %d, want 1: only the refused flow is left", code)
	}
	stderr.Reset()
	if code := run([]string{"check", "--config.file", site, "--flow", "app-typo"}, &stdout, &stderr); code != exitUsage ||
		!strings.Contains(stderr.String(), `flow "app-typo" is not in the plan`) {
		t.Errorf("a flow that matches nothing: exit %d, stderr %q", code, stderr.String())
	}
}

func TestCheckProgressLine(t *testing.T) {
	targets := []probe.Target{
		{ID: "p/comm-path/192.0.2.1:7365/tcp/tcp", Flow: "comm-path"},
		{ID: "p/lkping/192.0.2.1/icmp/icmp", Flow: "lkping"},
		{ID: "p/web/192.0.2.1:443/tcp/tls", Flow: "web"},
	}
	p := newProgress(&bytes.Buffer{}, targets, true)
	entered, release := make(chan struct{}), make(chan struct{})
	c := p.wrap(probe.CheckerFunc(func(ctx context.Context, t probe.Target) probe.Result {
		entered <- struct{}{}
		<-release
		return probe.Result{}
	}))
	done := make(chan struct{})
	for _, tg := range targets[:2] {
		go func() { c.Check(context.Background(), tg); done <- struct{}{} }()
	}
	<-entered
	<-entered
	p.done(2, probe.Result{})
	line := p.line()
	if !strings.HasPrefix(line, "[1/3] ") || !strings.Contains(line, "comm-path 192.0.2.1:7365") ||
		!strings.Contains(line, "lkping 192.0.2.1") {
		t.Errorf("progress line %q: want done of total and the running checks", line)
	}
	close(release)
	<-done
	<-done
	if line := p.line(); line != "[1/3]" {
		t.Errorf("with nothing running: %q", line)
	}
}
