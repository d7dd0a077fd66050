//go:build linux

package testlab

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Chain is a path of five network namespaces of its own, for the trace
// tests: client → router A → firewall B → router C → server, with
// forwarding on, ICMP rate limits off and one subnet per link. Link k
// (1..4) joins namespace k-1 (address .1) and namespace k (address .2) in
// 10.91.k.0/24 and fd00:91:k::/64, ranges used only inside these
// namespaces. From the client, hop 1 answers from A's link-1 address,
// hop 2 from B's, hop 3 from C's and the server is hop 4.
type Chain struct {
	// Names of the namespaces, in path order: client, A, B, C, server.
	NS [5]string
}

// Namespace indexes of a Chain.
const (
	ChainClient = iota
	ChainRouterA
	ChainFirewallB
	ChainRouterC
	ChainServer
)

// ChainAddr is the address of namespace i of a chain, on the link towards
// the client (the server's only link for ChainServer): the address a
// router answers a trace from.
func ChainAddr(i int, v6 bool) string {
	link, host := i, 2
	if i == ChainClient {
		link, host = 1, 1
	}
	if v6 {
		return fmt.Sprintf("fd00:91:%d::%d", link, host)
	}
	return fmt.Sprintf("10.91.%d.%d", link, host)
}

// NewChain creates a chain of namespaces named fptr-<random>-<n> and
// removes them when the test ends.
func NewChain(t testing.TB) *Chain {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	c := &Chain{}
	for i := range c.NS {
		c.NS[i] = fmt.Sprintf("fptr-%s-%d", id, i)
		name := c.NS[i]
		mustRun(t, "ip", "netns", "add", name)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v\n%s", name, err, out)
			}
		})
		c.In(t, i, "ip", "link", "set", "lo", "up")
		for _, s := range []string{"net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1",
			"net.ipv4.icmp_ratelimit=0", "net.ipv6.icmp.ratelimit=0", "net.ipv6.conf.default.accept_dad=0"} {
			c.In(t, i, "sysctl", "-qw", s)
		}
	}
	for k := 1; k <= 4; k++ {
		left, right := "e"+strconv.Itoa(k), "w"+strconv.Itoa(k)
		mustRun(t, "ip", "link", "add", left, "netns", c.NS[k-1], "type", "veth", "peer", "name", right, "netns", c.NS[k])
		for side, dev := range []string{left, right} {
			ns := k - 1 + side
			c.In(t, ns, "ip", "addr", "add", fmt.Sprintf("10.91.%d.%d/24", k, side+1), "dev", dev)
			c.In(t, ns, "ip", "addr", "add", fmt.Sprintf("fd00:91:%d::%d/64", k, side+1), "dev", dev, "nodad")
			c.In(t, ns, "ip", "link", "set", dev, "up")
		}
	}
	// Routes: towards the server by default, back to the client where the
	// default route points the other way.
	routes := []struct {
		ns       int
		dst, via string
	}{
		{ChainClient, "default", "1"}, {ChainRouterA, "default", "2"},
		{ChainFirewallB, "default", "3"}, {ChainFirewallB, "1", "2"},
		{ChainRouterC, "default", "3"}, {ChainServer, "default", "4"},
	}
	for _, r := range routes {
		// The gateway is the far end of link "via": .2 towards the server, .1 back.
		viaLink, _ := strconv.Atoi(r.via)
		host := 2
		if viaLink <= r.ns {
			host = 1
		}
		dst4, dst6 := r.dst, r.dst
		if r.dst != "default" {
			dst4, dst6 = "10.91."+r.dst+".0/24", "fd00:91:"+r.dst+"::/64"
		}
		c.In(t, r.ns, "ip", "route", "add", dst4, "via", fmt.Sprintf("10.91.%d.%d", viaLink, host))
		c.In(t, r.ns, "ip", "-6", "route", "add", dst6, "via", fmt.Sprintf("fd00:91:%d::%d", viaLink, host))
	}
	// Warm the neighbour caches along the path (IPv6 loses the first
	// packets while neighbour discovery settles): ping every hop.
	for i := ChainRouterA; i <= ChainServer; i++ {
		for _, v6 := range []bool{false, true} {
			c.In(t, ChainClient, "ping", "-q", "-c", "1", "-W", "5", ChainAddr(i, v6))
		}
	}
	return c
}

// In runs a command inside namespace i of the chain and fails the test
// when it fails.
func (c *Chain) In(t testing.TB, i int, name string, args ...string) {
	t.Helper()
	mustRun(t, "ip", append([]string{"netns", "exec", c.NS[i], name}, args...)...)
}

// Rule adds an iptables and an ip6tables rule in namespace i (args
// without -A/-D, e.g. "FORWARD", "-p", "tcp", ...; v6args likewise, or nil
// for the same arguments) and deletes them when the test ends.
func (c *Chain) Rule(t testing.TB, i int, args, v6args []string) {
	t.Helper()
	nsRule(t, c.NS[i], args, v6args)
}

// Block makes firewall B apply action to forwarded packets for
// proto/port, for IPv4 and IPv6.
func (c *Chain) Block(t testing.TB, proto string, port int, action Action) {
	t.Helper()
	v4, v6 := blockRule(t, "FORWARD", proto, port, action)
	c.Rule(t, ChainFirewallB, v4, v6)
}

// nsRule adds an iptables and an ip6tables rule in namespace ns (as
// Chain.Rule) and deletes them when the test ends.
func nsRule(t testing.TB, ns string, args, v6args []string) {
	t.Helper()
	if v6args == nil {
		v6args = args
	}
	for _, r := range []struct {
		cmd  string
		args []string
	}{{"iptables", args}, {"ip6tables", v6args}} {
		mustRun(t, "ip", append([]string{"netns", "exec", ns, r.cmd, "-w", "-A"}, r.args...)...)
		t.Cleanup(func() { mustRun(t, "ip", append([]string{"netns", "exec", ns, r.cmd, "-w", "-D"}, r.args...)...) })
	}
}

// blockRule is the iptables and ip6tables rule (without -A) that applies
// action to packets for proto/port in chain.
func blockRule(t testing.TB, chain, proto string, port int, action Action) (v4, v6 []string) {
	t.Helper()
	match := []string{chain, "-p", proto, "--dport", strconv.Itoa(port), "-j"}
	with := func(target ...string) []string { return append(match[:len(match):len(match)], target...) }
	switch action {
	case Drop:
		return with("DROP"), with("DROP")
	case RejectTCPReset:
		return with("REJECT", "--reject-with", "tcp-reset"), with("REJECT", "--reject-with", "tcp-reset")
	case RejectPortUnreach:
		return with("REJECT", "--reject-with", "icmp-port-unreachable"), with("REJECT", "--reject-with", "icmp6-port-unreachable")
	case RejectAdminProhib:
		return with("REJECT", "--reject-with", "icmp-admin-prohibited"), with("REJECT", "--reject-with", "icmp6-adm-prohibited")
	}
	t.Fatalf("testlab: firewall action %q not supported", action)
	return nil, nil
}

// BlackHole lowers the MTU of the link between router C and the server to
// mtu and, unless tell, makes C drop the fragmentation-needed (packet too
// big) messages it would send back: an MTU black hole at C.
func (c *Chain) BlackHole(t testing.TB, mtu int, tell bool) {
	t.Helper()
	c.In(t, ChainRouterC, "ip", "link", "set", "e4", "mtu", strconv.Itoa(mtu))
	c.In(t, ChainServer, "ip", "link", "set", "w4", "mtu", strconv.Itoa(mtu))
	t.Cleanup(func() {
		c.In(t, ChainRouterC, "ip", "link", "set", "e4", "mtu", "1500")
		c.In(t, ChainServer, "ip", "link", "set", "w4", "mtu", "1500")
	})
	if !tell {
		c.Rule(t, ChainRouterC, []string{"OUTPUT", "-p", "icmp", "--icmp-type", "fragmentation-needed", "-j", "DROP"},
			[]string{"OUTPUT", "-p", "icmpv6", "--icmpv6-type", "packet-too-big", "-j", "DROP"})
	}
}

// Do runs fn with the calling goroutine's thread inside namespace i:
// every socket fn opens in this goroutine belongs to that namespace and
// stays there afterwards (a listener keeps serving from it).
func (c *Chain) Do(t testing.TB, i int, fn func()) {
	t.Helper()
	inNamespace(t, c.NS[i], fn)
}

// inNamespace runs fn with the calling goroutine's thread inside the named
// network namespace, as Chain.Do.
func inNamespace(t testing.TB, ns string, fn func()) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("testlab: %v", err)
	}
	defer orig.Close()
	target, err := os.Open("/var/run/netns/" + ns)
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("testlab: %v", err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("testlab: setns %s: %v", ns, err)
	}
	defer func() {
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: the runtime ends it with the goroutine.
			t.Errorf("testlab: back to the original namespace: %v", err)
			return
		}
		runtime.UnlockOSThread()
	}()
	fn()
}

func mustRun(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}
