package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/flowprobe/flowprobe/probe/report"
)

func runTraceCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(append([]string{"trace"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestTraceOpenPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	code, out, errOut := runTraceCLI(t, "tcp", l.Addr().String(), "--max-hops", "3", "--tries", "1")
	if code != exitOK {
		t.Fatalf("exit %d, stderr %s", code, errOut)
	}
	for _, want := range []string{"trace tcp/", "syn-ack", "verdict: the destination 127.0.0.1 answers", "the path is open", "bounded by 3s"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestTraceJSON(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	code, out, errOut := runTraceCLI(t, "--output", "json", "--max-hops", "2", "--source-address", "127.0.0.1", "tcp", l.Addr().String())
	if code != exitOK {
		t.Fatalf("exit %d, stderr %s", code, errOut)
	}
	var got report.Trace
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if !got.Reached || got.Source != "127.0.0.1" || len(got.Paths) != 1 || got.Paths[0].Hops[0].Reply != "syn-ack" {
		t.Errorf("got %+v", got)
	}
}

func TestTraceFlowOfTheCatalogTakesItsPort(t *testing.T) {
	a := &traceArgs{what: "citrix-app-layering/admin-console-https", address: "127.0.0.1", timeout: 1, maxHops: 1, tries: 1}
	req, err := a.request(t.Context())
	if err != nil || req.Protocol != "tcp" || req.Port != 443 {
		t.Errorf("catalog flow: %+v, %v; want tcp/443", req, err)
	}
	a.address = "127.0.0.1:8443"
	if req, err = a.request(t.Context()); err != nil || req.Port != 8443 {
		t.Errorf("port in the address: %+v, %v; want 8443", req, err)
	}
	a.what = "nonexistent-flow"
	if _, err := a.request(t.Context()); err == nil || !strings.Contains(err.Error(), "neither a check kind") {
		t.Errorf("unknown flow: %v", err)
	}
}

func TestTraceUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"tcp", "127.0.0.1"}, "needs a port"},
		{[]string{"tcp", "127.0.0.1:0"}, "port in 1..65535"},
		{[]string{"nosuchkind", "127.0.0.1:1"}, "neither a check kind"},
		{[]string{"-4", "-6", "tcp", "127.0.0.1:1"}, "exclude each other"},
		{[]string{"--max-hops", "99", "tcp", "127.0.0.1:1"}, "max hops 99"},
		{[]string{"--tries", "3", "tcp", "127.0.0.1:1"}, "tries 3"},
		{[]string{"--timeout", "0s", "tcp", "127.0.0.1:1"}, "must be positive"},
		{[]string{"--source-address", "nope", "tcp", "127.0.0.1:1"}, "not an IP address"},
	} {
		code, _, errOut := runTraceCLI(t, tc.args...)
		if code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, errOut, tc.want)
		}
	}
}

func TestTraceAfterCheck(t *testing.T) {
	site, _, closed := checkSite(t, true)
	var stdout, stderr bytes.Buffer
	code := run([]string{"check", "--config.file", site, "--trace", "--progress", "never"}, &stdout, &stderr)
	if code != exitFailed {
		t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitFailed, stderr.String())
	}
	out := stdout.String()
	head, traces, ok := strings.Cut(out, "Where the failing flows stop:")
	if !ok {
		t.Fatalf("no trace section:\n%s", out)
	}
	if !strings.Contains(head, "app-closed") {
		t.Errorf("the check report itself is missing:\n%s", head)
	}
	want := fmt.Sprintf("RST from the destination 127.0.0.1 at hop 1: the path is open, nothing listens on tcp/%d", closed)
	if !strings.Contains(traces, want) || !strings.Contains(traces, "app-closed") || strings.Contains(traces, "app-open") {
		t.Errorf("traces want only app-closed with %q:\n%s", want, traces)
	}

	// Without --trace the report is what it always was.
	stdout.Reset()
	run([]string{"check", "--config.file", site, "--progress", "never"}, &stdout, &stderr)
	if strings.Contains(stdout.String(), "Where the failing flows stop") {
		t.Errorf("traces without --trace:\n%s", stdout.String())
	}
}
