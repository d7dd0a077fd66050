//go:build lab

package main

import (
	"bytes"
	"net"
	"strings"
	"testing"

	"github.com/flowprobe/flowprobe/deploy/testlab"
)

// TestTraceLabCLI runs `flowprobe trace` from the client namespace of its
// own chain, through a firewall that drops tcp/389.
func TestTraceLabCLI(t *testing.T) {
	c := testlab.NewChain(t)
	c.Do(t, testlab.ChainServer, func() {
		l, err := net.Listen("tcp", ":389")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
	})
	for _, v6 := range []bool{false, true} {
		t.Run(map[bool]string{false: "IPv4", true: "IPv6"}[v6], func(t *testing.T) { traceLabCLI(t, c, v6) })
	}
}

func traceLabCLI(t *testing.T, c *testlab.Chain, v6 bool) {
	{
		server := net.JoinHostPort(testlab.ChainAddr(testlab.ChainServer, v6), "389")
		b := testlab.ChainAddr(testlab.ChainFirewallB, v6)
		var code int
		var stdout, stderr bytes.Buffer
		c.Do(t, testlab.ChainClient, func() {
			code = run([]string{"trace", "ldap", server, "--timeout", "300ms", "--max-hops", "8"}, &stdout, &stderr)
		})
		if code != exitOK || !strings.Contains(stdout.String(), "syn-ack") {
			t.Errorf("open path: exit %d\n%s%s", code, stdout.String(), stderr.String())
		}

		c.Block(t, "tcp", 389, testlab.Drop)
		stdout.Reset()
		c.Do(t, testlab.ChainClient, func() {
			code = run([]string{"trace", "ldap", server, "--timeout", "300ms", "--max-hops", "8"}, &stdout, &stderr)
		})
		want := "hop 3 silent for tcp/389 while ICMP echo passes it (reaches the destination at hop 4): a filter at or after " + b + " drops this port"
		if code != exitFailed || !strings.Contains(stdout.String(), want) {
			t.Errorf("drop: exit %d, want 1 and %q\n%s%s", code, want, stdout.String(), stderr.String())
		}
		t.Logf("\n%s", stdout.String())
	}
}
