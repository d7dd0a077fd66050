//go:build lab

package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/deploy/testlab"
	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/probe/report"
)

// The responder test: an XClarity CMM, which receives SLP on both tcp/427
// and udp/427 from the XClarity appliance, is not installed yet, so
// `flowprobe listen` stands in for it in the lab's second namespace and
// the appliance side (this host) proves the path with `flowprobe check`.
const (
	respProduct = "lenovo-xclarity-administrator"
	respRole    = "cmm"
	respSelf    = "lxca"
	respSLP     = 427  // cmm-slp-tcp and cmm-slp-udp
	respControl = 6091 // cmm-secure-tcp-command: never blocked below
)

// labListen starts `flowprobe listen` in the client namespace and waits
// until it answers. stop ends it with SIGINT and returns its exit code and
// standard output (the summary).
func labListen(t *testing.T) (logs *lineWaiter, stop func() (int, string)) {
	t.Helper()
	var stdout bytes.Buffer
	logs = &lineWaiter{want: "answering flowprobe probes", seen: make(chan struct{})}
	// --duration is the backstop should the test die before it stops it.
	cmd := exec.Command("ip", "netns", "exec", testlab.ClientNamespace, flowprobeBin, "listen",
		"--product", respProduct, "--role", respRole, "--address", testlab.PeerAddr, "--duration", "60s", "--name", "cmm-lab")
	cmd.Stdout, cmd.Stderr = &stdout, logs
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			cmd.Process.Kill()
			<-exited
		}
	})
	select {
	case <-logs.seen:
	case err := <-exited:
		stopped = true
		t.Fatalf("flowprobe listen ended before answering (%v):\n%s", err, logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("flowprobe listen did not start answering within 30s:\n%s", logs.String())
	}
	return logs, func() (int, string) {
		t.Helper()
		stopped = true
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		var err error
		select {
		case err = <-exited:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Fatalf("flowprobe listen did not stop within 15s of SIGINT:\n%s", logs.String())
		}
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode(), stdout.String()
	}
}

// forwardDrop drops proto/port towards the client namespace in the lab's
// FORWARD chain, where traffic from this host to it passes, and removes the
// rule when the test ends.
func forwardDrop(t *testing.T, proto string, port int) {
	t.Helper()
	rule := []string{"FORWARD", "-d", testlab.PeerAddr, "-p", proto, "--dport", strconv.Itoa(port), "-j", "DROP"}
	ipt := func(op string) error {
		args := append([]string{"netns", "exec", testlab.Namespace, "iptables", "-w", op}, rule...)
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("iptables %s %v: %w\n%s", op, rule, err, out)
		}
		return nil
	}
	if err := ipt("-I"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ipt("-D"); err != nil {
			t.Error(err)
		}
	})
}

// checkResponder runs the appliance's check of the CMM's SLP flows and its
// secure command port against the responder.
func checkResponder(t *testing.T) (map[string]report.Result, string, int) {
	t.Helper()
	stdout, stderr, code := runFlowprobe(t, "check", "--product", respProduct, "--self", respSelf,
		"--host", respRole+"="+testlab.PeerAddr, "--responder", respRole,
		"--flow", "cmm-slp-tcp", "--flow", "cmm-slp-udp", "--flow", "cmm-secure-tcp-command",
		"--timeout", "2s", "--output", "json")
	byFlow := jsonReports(t, stdout)
	if len(byFlow) != 3 {
		t.Fatalf("%d reports, want 3:\n%s\n%s", len(byFlow), stdout, stderr)
	}
	for flow, want := range map[string]struct {
		proto probe.Protocol
		port  int
	}{
		"cmm-slp-tcp":            {probe.TCP, respSLP},
		"cmm-slp-udp":            {probe.UDP, respSLP},
		"cmm-secure-tcp-command": {probe.TCP, respControl},
	} {
		r := byFlow[flow]
		if r.Protocol != want.proto || r.Port != want.port || r.Check != string(want.proto) ||
			r.Target != fmt.Sprintf("%s:%d", testlab.PeerAddr, want.port) || r.Source != respSelf || r.Destination != respRole {
			t.Errorf("%s: target=%s protocol=%s port=%d check=%s source=%s destination=%s", flow, r.Target, r.Protocol, r.Port, r.Check, r.Source, r.Destination)
		}
	}
	return byFlow, stderr, code
}

// TestLabListenResponder runs `flowprobe listen` for a CMM in the lab's
// client namespace and `flowprobe check` from this host: TCP and UDP pass
// through the responder; with the lab's forwarding dropping SLP, the TCP
// flow times out and the UDP flow gets no response; the responder's
// summary counts exactly the probes that reached it.
func TestLabListenResponder(t *testing.T) {
	testlab.Require(t)
	logs, stop := labListen(t)

	byFlow, stderr, code := checkResponder(t)
	if code != exitOK {
		t.Errorf("open path: exit %d, want 0; stderr:\n%s", code, stderr)
	}
	for flow, r := range byFlow {
		if r.Outcome != probe.OutcomeOK || !r.Success || r.Details[probe.DetailResponder] != "true" {
			t.Errorf("open path, %s: outcome=%s success=%v details=%v error=%q, want ok from the responder",
				flow, r.Outcome, r.Success, r.Details, r.Error)
		}
	}

	forwardDrop(t, "tcp", respSLP)
	forwardDrop(t, "udp", respSLP)
	byFlow, stderr, code = checkResponder(t)
	if code != exitFailed {
		t.Errorf("blocked path: exit %d, want 1; stderr:\n%s", code, stderr)
	}
	for flow, want := range map[string]probe.Outcome{
		"cmm-slp-tcp":            probe.OutcomeTimeout,
		"cmm-slp-udp":            probe.OutcomeNoResponse,
		"cmm-secure-tcp-command": probe.OutcomeOK,
	} {
		if r := byFlow[flow]; r.Outcome != want || r.Success != (want == probe.OutcomeOK) {
			t.Errorf("blocked path, %s: outcome=%s success=%v error=%q, want %s", flow, r.Outcome, r.Success, r.Error, want)
		}
	}
	if r := byFlow["cmm-secure-tcp-command"]; r.Details[probe.DetailResponder] != "true" {
		t.Errorf("blocked path: the unblocked port no longer reaches the responder: %v", r.Details)
	}

	code, summary := stop()
	if code != exitOK {
		t.Errorf("listen exit %d, want 0:\n%s", code, logs.String())
	}
	// Every check ran from this host's address on the lab link; the
	// dropped probes never arrived.
	from := "from " + testlab.ClientAddr
	lines := map[string]string{}
	for _, l := range strings.Split(summary, "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			lines[f[0]] = l
		}
	}
	for port, want := range map[string]string{
		"tcp/427":  "cmm-slp-tcp 1 probes (1 from flowprobe) " + from,
		"udp/427":  "cmm-slp-udp 1 probes (1 from flowprobe) " + from,
		"tcp/6091": "cmm-secure-tcp-command 2 probes (2 from flowprobe) " + from,
		"tcp/5988": "cmm-cim-http no probe",
	} {
		if got := strings.Join(strings.Fields(lines[port]), " "); got != port+" "+want {
			t.Errorf("summary line %q, want %q; summary:\n%s", got, port+" "+want, summary)
		}
	}
	if !strings.HasPrefix(summary, "Responder cmm-lab: what it saw\n") ||
		!strings.HasSuffix(summary, "\n4 probes received on 6 ports, 0 ports skipped\n") {
		t.Errorf("summary:\n%s", summary)
	}
	for _, w := range []string{
		`msg="probe received" protocol=udp port=427 remote=` + testlab.ClientAddr + " flowprobe=true flows=cmm-slp-udp",
		`msg="probe received" protocol=tcp port=427 remote=` + testlab.ClientAddr + " flowprobe=true flows=cmm-slp-tcp",
	} {
		if !strings.Contains(logs.String(), w) {
			t.Errorf("listen log lacks %q:\n%s", w, logs.String())
		}
	}
}
