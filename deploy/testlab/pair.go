//go:build linux

package testlab

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Pair is two network namespaces of a test's own, a client and a server
// joined by a veth pair, and a private directory (see newPair).
type Pair struct {
	ClientNS, NS string
	// Dir holds the server's configuration, state and logs.
	Dir string
}

// Block applies action to packets for proto/port arriving at the server,
// for IPv4 and IPv6, until the test ends.
func (p Pair) Block(t testing.TB, proto string, port int, action Action) {
	t.Helper()
	v4, v6 := blockRule(t, "INPUT", proto, port, action)
	nsRule(t, p.NS, v4, v6)
}

// Do runs fn with the calling goroutine's thread inside the client
// namespace (see Chain.Do).
func (p Pair) Do(t testing.TB, fn func()) {
	t.Helper()
	inNamespace(t, p.ClientNS, fn)
}

// newPair creates two network namespaces of the test's own,
// <prefix>-<random>-c (the client) and <prefix>-<random>-<side> (the
// server), joined by a veth pair (c0 in the client, eth0 in the server)
// that carries the given addresses (CIDR; IPv6 ones without duplicate
// address detection), and a private directory named after them. ICMP
// errors are not rate-limited, so every REJECT answers however many tests
// ask. The test's end removes namespaces and directory.
func newPair(t testing.TB, prefix, side string, clientAddrs, serverAddrs []string) Pair {
	t.Helper()
	id := make([]byte, 4)
	_, _ = rand.Read(id)
	name := prefix + "-" + hex.EncodeToString(id)
	clientNS, ns := name+"-c", name+"-"+side
	// A short path: daemons put unix sockets under it.
	dir, err := os.MkdirTemp("", name+"-")
	if err != nil {
		t.Fatalf("testlab: %v", err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("testlab: %v", err)
		}
	})
	for _, n := range []string{clientNS, ns} {
		mustRun(t, "ip", "netns", "add", n)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", n).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v\n%s", n, err, out)
			}
		})
		mustRun(t, "ip", "-n", n, "link", "set", "lo", "up")
		for _, s := range []string{"net.ipv4.icmp_ratelimit=0", "net.ipv6.icmp.ratelimit=0"} {
			mustRun(t, "ip", "netns", "exec", n, "sysctl", "-qw", s)
		}
	}
	mustRun(t, "ip", "link", "add", "c0", "netns", clientNS, "type", "veth", "peer", "name", "eth0", "netns", ns)
	for _, l := range []struct {
		ns, dev string
		addrs   []string
	}{{clientNS, "c0", clientAddrs}, {ns, "eth0", serverAddrs}} {
		for _, a := range l.addrs {
			args := []string{"-n", l.ns, "addr", "add", a, "dev", l.dev}
			if strings.Contains(a, ":") {
				args = append(args, "nodad")
			}
			mustRun(t, "ip", args...)
		}
		mustRun(t, "ip", "-n", l.ns, "link", "set", l.dev, "up")
	}
	return Pair{ClientNS: clientNS, NS: ns, Dir: dir}
}
