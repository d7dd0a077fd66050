package main

import (
	"bytes"
	"encoding/json"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/flowprobe/flowprobe/checks"
	"github.com/flowprobe/flowprobe/probe"
)

func runProbeCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(append([]string{"probe"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

// probeResponder starts a flowprobe responder on loopback TCP and UDP.
func probeResponder(t *testing.T) (tcpAddr, udpAddr string) {
	t.Helper()
	r, err := checks.StartResponder(checks.ResponderConfig{Address: "127.0.0.1", TCPPorts: []int{0}, UDPPorts: []int{0}, Name: "cli-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	for _, p := range r.Listening() {
		addr := "127.0.0.1:" + strconv.Itoa(p.Port)
		if p.Protocol == probe.TCP {
			tcpAddr = addr
		} else {
			udpAddr = addr
		}
	}
	return tcpAddr, udpAddr
}

func closedAddr(t *testing.T, network string) string {
	t.Helper()
	if network == "udp" {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		return pc.LocalAddr().String()
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// silentUDP reads datagrams and never answers.
func silentUDP(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		b := make([]byte, 2048)
		for {
			if _, _, err := pc.ReadFrom(b); err != nil {
				return
			}
		}
	}()
	return pc.LocalAddr().String()
}

func TestProbeText(t *testing.T) {
	tcpAddr, udpAddr := probeResponder(t)
	closed := closedAddr(t, "tcp")
	cases := []struct {
		name string
		args []string
		code int
		want []string // lines or fragments of stdout, in order
	}{
		{"tcp ok", []string{"tcp", tcpAddr}, exitOK,
			[]string{"✓ tcp " + tcpAddr + ": ok in ", "  phases:  connect "}},
		{"tcp responder", []string{"tcp", tcpAddr, "--set", "responder=true"}, exitOK,
			[]string{"✓ tcp " + tcpAddr + ": ok", "phases:  connect ", "request ", "  responder: true", "  responder_name: cli-test"}},
		{"tcp refused", []string{"tcp", closed}, exitFailed,
			[]string{"✗ tcp " + closed + ": refused in ", "  error:   connect: ", "connection refused", "  hint:    the host answered with a refusal: nothing listens on the port, or a firewall REJECTs; start the service or open the flow"}},
		{"refused before connect passes deny", []string{"tcp", closed, "--expect", "deny"}, exitOK,
			[]string{"✓ tcp " + closed + ": refused", "(blocked, as expected)"}},
		{"a connection is a violation of deny", []string{"tcp", tcpAddr, "--expect", "deny"}, exitFailed,
			[]string{"✗ tcp " + tcpAddr + ": ok", "(expected to be blocked)"}},
		{"udp responder", []string{"udp", udpAddr}, exitOK,
			[]string{"✓ udp " + udpAddr + ": ok", "  responder: true"}},
		{"udp silence passes deny", []string{"udp", silentUDP(t), "--expect", "deny", "--timeout", "50ms"}, exitOK,
			[]string{": no_response in ", "(blocked, as expected)", "  reason: open or filtered"}},
		{"-6 against an IPv4 literal", []string{"-6", "tcp", tcpAddr}, exitLocal,
			[]string{"✗ tcp " + tcpAddr + ": local_error", "reason: " + probe.ReasonFamilyMismatch,
				"  hint:    the source address and the target are of different IP families: give a source address of the target's family, or set ip_family"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runProbeCLI(t, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errOut)
			}
			rest := out
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("stdout lacks %q (in order):\n%s", w, out)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

func TestProbeJSON(t *testing.T) {
	tcpAddr, _ := probeResponder(t)
	code, out, errOut := runProbeCLI(t, "tcp", tcpAddr, "--output", "json", "--set", "responder=true", "--source-address", "127.0.0.2")
	if code != exitOK {
		t.Fatalf("exit %d: %s %s", code, out, errOut)
	}
	var rep map[string]any
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	for _, k := range []string{"check", "target", "outcome", "success", "duration_seconds", "phases", "details", "error"} {
		if _, ok := rep[k]; !ok {
			t.Errorf("report lacks %q: %s", k, out)
		}
	}
	details, _ := rep["details"].(map[string]any)
	phases, _ := rep["phases"].(map[string]any)
	if rep["check"] != "tcp" || rep["target"] != tcpAddr || rep["outcome"] != "ok" || rep["success"] != true || rep["error"] != "" {
		t.Errorf("report %s", out)
	}
	if details["responder"] != "true" || !strings.HasPrefix(details["responder_seen_as"].(string), "127.0.0.2:") {
		t.Errorf("details %v: want the responder to have seen 127.0.0.2", details)
	}
	if _, ok := phases["connect"]; !ok {
		t.Errorf("phases %v", phases)
	}

	closed := closedAddr(t, "tcp")
	code, out, _ = runProbeCLI(t, "tcp", closed, "--output", "json")
	if code != exitFailed {
		t.Fatalf("exit %d for a refused probe", code)
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if rep["outcome"] != "refused" || rep["success"] != false || !strings.Contains(rep["error"].(string), "connection refused") {
		t.Errorf("report %s", out)
	}
}

func TestProbeUsageErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want []string // in stderr
	}{
		{"unknown kind", []string{"gopher", "127.0.0.1:1"}, append([]string{`unknown check kind "gopher"`}, checks.Names()...)},
		{"unknown option", []string{"tcp", "127.0.0.1:1", "--set", "sned=x"}, []string{"tcp options", "sned"}},
		{"bad option value", []string{"tcp", "127.0.0.1:1", "--set", "expect=(("}, []string{"expect"}},
		{"--set without =", []string{"tcp", "127.0.0.1:1", "--set", "responder"}, []string{`--set "responder"`}},
		{"no port", []string{"tcp", "127.0.0.1"}, []string{`address "127.0.0.1"`, "host:port"}},
		{"port out of range", []string{"tcp", "127.0.0.1:70000"}, []string{"1..65535"}},
		{"port for icmp", []string{"icmp", "127.0.0.1:7"}, []string{"no port"}},
		{"-4 and -6", []string{"-4", "-6", "tcp", "127.0.0.1:1"}, []string{"exclude each other"}},
		{"bad source address", []string{"tcp", "127.0.0.1:1", "--source-address", "eth0"}, []string{`--source-address "eth0"`}},
		{"zero timeout", []string{"tcp", "127.0.0.1:1", "--timeout", "0s"}, []string{"--timeout"}},
		{"bad output", []string{"tcp", "127.0.0.1:1", "--output", "yaml"}, []string{"yaml"}},
		{"missing address", []string{"tcp"}, []string{"address"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runProbeCLI(t, tc.args...)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, exitUsage, out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q does not say %q", errOut, w)
				}
			}
			if out != "" {
				t.Errorf("stdout on a usage error: %q", out)
			}
		})
	}
}
