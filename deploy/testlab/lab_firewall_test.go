//go:build lab

// The lab answers ICMP, and each firewall action gives a client the
// answer (or the silence) the checks classify.

package testlab_test

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/flowprobe/flowprobe/deploy/testlab"
)

// ping sends one ICMP echo request from the host to addr and returns the
// ICMP message that answers it: an echo reply, a destination unreachable,
// or an error (a timeout when nothing came back within d). The raw socket is
// connected to addr, so the kernel hands it only what addr sends.
func ping(t *testing.T, addr string, d time.Duration) (*icmp.Message, error) {
	t.Helper()
	ip := net.ParseIP(addr)
	network, proto := "ip4:icmp", 1
	var typ icmp.Type = ipv4.ICMPTypeEcho
	if ip.To4() == nil {
		network, proto = "ip6:ipv6-icmp", 58
		typ = ipv6.ICMPTypeEchoRequest
	}
	c, err := net.DialIP(network, nil, &net.IPAddr{IP: ip})
	if err != nil {
		t.Fatalf("icmp socket: %v", err)
	}
	defer c.Close()
	// Let through only the kinds of answer we look for.
	if proto == 1 {
		var f ipv4.ICMPFilter
		f.SetAll(true)
		f.Accept(ipv4.ICMPTypeEchoReply)
		f.Accept(ipv4.ICMPTypeDestinationUnreachable)
		err = ipv4.NewPacketConn(c).SetICMPFilter(&f)
	} else {
		var f ipv6.ICMPFilter
		f.SetAll(true)
		f.Accept(ipv6.ICMPTypeEchoReply)
		f.Accept(ipv6.ICMPTypeDestinationUnreachable)
		err = ipv6.NewPacketConn(c).SetICMPFilter(&f)
	}
	if err != nil {
		t.Fatal(err)
	}
	id, seq := os.Getpid()&0xffff, int(time.Now().UnixNano()&0x7fff)
	b, err := (&icmp.Message{Type: typ, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("flowprobe lab")}}).Marshal(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetDeadline(time.Now().Add(d)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(b); err != nil {
		return nil, err
	}
	buf := make([]byte, 1500)
	for i := 0; i < 1000; i++ {
		n, _, err := c.ReadFromIP(buf) // without the IPv4 header
		var errno syscall.Errno
		if errors.As(err, &errno) {
			// The connected socket reports a destination unreachable
			// as an errno first; the message itself follows.
			continue
		}
		if err != nil {
			return nil, err
		}
		m, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil {
			continue
		}
		switch body := m.Body.(type) {
		case *icmp.Echo:
			if body.ID != id || body.Seq != seq {
				continue // another test's ping to the same address
			}
			return m, nil
		case *icmp.DstUnreach:
			return m, nil
		}
	}
	return nil, errors.New("no answer among 1000 ICMP messages")
}

func TestPing(t *testing.T) {
	testlab.Require(t)
	for _, addr := range []string{testlab.ServerAddr, testlab.ServerAddr6, testlab.PeerAddr} {
		m, err := ping(t, addr, wait)
		if err != nil {
			t.Errorf("ping %s: %v", addr, err)
			continue
		}
		if m.Type != ipv4.ICMPTypeEchoReply && m.Type != ipv6.ICMPTypeEchoReply {
			t.Errorf("ping %s: answered %v", addr, m.Type)
		}
	}
}

func TestClientNamespaceReachesTheLab(t *testing.T) {
	testlab.Require(t)
	ctx := ctxFor(t, 10*time.Second)
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", testlab.ClientNamespace,
		"ping", "-c", "1", "-W", "2", testlab.ServerAddr).CombinedOutput()
	if err != nil {
		t.Errorf("ping %s from %s: %v\n%s", testlab.ServerAddr, testlab.ClientNamespace, err, out)
	}
}

func TestNamespaceSysctls(t *testing.T) {
	testlab.Require(t)
	for key, want := range map[string]string{
		"net.ipv4.icmp_ratelimit":   "0",
		"net.ipv6.icmp.ratelimit":   "0",
		"net.ipv4.ip_forward":       "1",
		"net.ipv4.ping_group_range": "0\t2147483647",
	} {
		out, err := exec.Command("ip", "netns", "exec", testlab.Namespace, "sysctl", "-n", key).Output()
		if got := strings.TrimSpace(string(out)); err != nil || got != want {
			t.Errorf("%s in %s: %q, %v; want %q", key, testlab.Namespace, got, err, want)
		}
	}
}

// TestFirewallTCP checks that each firewall action gives a TCP client the
// kernel's answer that flowprobe's classification relies on, for IPv4 and
// IPv6, and that removing the rule opens the port again.
//
// Over IPv4 the answer comes at once. Over IPv6 the ICMPv6 error of the
// first SYN reaches the connecting socket while connect() still holds it
// (the veth hands packets over synchronously; see TcpExtLockDroppedIcmps),
// so Linux records it as a soft error and the client learns it from the
// answer to the first SYN retransmission, about one second later. The IPv6
// dials therefore allow a few seconds; the errno is the same.
func TestFirewallTCP(t *testing.T) {
	testlab.Require(t)
	timeout := errors.New("timeout")
	for _, tc := range []struct {
		action      testlab.Action
		want, want6 error
	}{
		{testlab.Drop, timeout, timeout},
		{testlab.RejectTCPReset, syscall.ECONNREFUSED, syscall.ECONNREFUSED},
		{testlab.RejectPortUnreach, syscall.ECONNREFUSED, syscall.ECONNREFUSED},
		{testlab.RejectAdminProhib, syscall.EHOSTUNREACH, syscall.EACCES}, // ICMPv6 1/1 is EACCES on Linux
		{testlab.RejectHostUnreach, syscall.EHOSTUNREACH, syscall.EHOSTUNREACH},
		{testlab.RejectNetUnreach, syscall.ENETUNREACH, syscall.ENETUNREACH},
	} {
		t.Run(string(tc.action), func(t *testing.T) {
			t.Run("rule", func(t *testing.T) {
				testlab.Firewall(t, "tcp", testlab.HTTPPort, tc.action)
				check := func(host string, want error, d time.Duration, attempt int) {
					t.Helper()
					c, err := dialTCP(t, host, testlab.HTTPPort, d)
					if c != nil {
						c.Close()
					}
					if want == timeout && !isTimeout(err) || want != timeout && !errors.Is(err, want) {
						t.Fatalf("dial %s port %d, attempt %d: got %v, want %v", host, testlab.HTTPPort, attempt, err, want)
					}
				}
				// Several attempts in a row: a REJECT must never be
				// rate-limited into a timeout.
				attempts := 5
				if tc.action == testlab.Drop {
					attempts = 1
				}
				for i := 1; i <= attempts; i++ {
					check(testlab.ServerAddr, tc.want, dropWait, i)
				}
				d6 := 4 * time.Second
				if tc.action == testlab.Drop {
					d6 = dropWait
				}
				check(testlab.ServerAddr6, tc.want6, d6, 1)
			})
			for _, host := range []string{testlab.ServerAddr, testlab.ServerAddr6} {
				c, err := dialTCP(t, host, testlab.HTTPPort, wait)
				if err != nil {
					t.Fatalf("after the rule was removed: dial %s: %v", host, err)
				}
				c.Close()
			}
		})
	}
}

// TestFirewallUDP does the same for a connected UDP socket, where only the
// "hard" ICMP codes reach the application and the rest look like silence.
func TestFirewallUDP(t *testing.T) {
	testlab.Require(t)
	timeout := errors.New("timeout")
	for _, tc := range []struct {
		action      testlab.Action
		want, want6 error
	}{
		{testlab.Drop, timeout, timeout},
		{testlab.RejectPortUnreach, syscall.ECONNREFUSED, syscall.ECONNREFUSED},
		{testlab.RejectAdminProhib, syscall.EHOSTUNREACH, syscall.EACCES}, // ICMPv6 1/1 is EACCES
		{testlab.RejectHostUnreach, timeout, timeout},                     // non-fatal ICMP codes
		{testlab.RejectNetUnreach, timeout, timeout},
	} {
		t.Run(string(tc.action), func(t *testing.T) {
			t.Run("rule", func(t *testing.T) {
				testlab.Firewall(t, "udp", testlab.EchoUDPPort, tc.action)
				for _, v := range []struct {
					host string
					want error
				}{{testlab.ServerAddr, tc.want}, {testlab.ServerAddr6, tc.want6}} {
					err := udpExchange(t, v.host, testlab.EchoUDPPort, dropWait)
					if v.want == timeout && !isTimeout(err) || v.want != timeout && !errors.Is(err, v.want) {
						t.Fatalf("udp echo %s: got %v, want %v", v.host, err, v.want)
					}
				}
			})
			for _, host := range []string{testlab.ServerAddr, testlab.ServerAddr6} {
				if err := udpExchange(t, host, testlab.EchoUDPPort, wait); err != nil {
					t.Fatalf("after the rule was removed: udp echo %s: %v", host, err)
				}
			}
		})
	}
}

// TestFirewallICMP switches echo requests off (drop) and to an ICMP error.
func TestFirewallICMP(t *testing.T) {
	testlab.Require(t)
	t.Run("drop", func(t *testing.T) {
		testlab.Firewall(t, "icmp", 0, testlab.Drop)
		if m, err := ping(t, testlab.ServerAddr, dropWait); !isTimeout(err) {
			t.Errorf("ping through DROP: %v %v, want a timeout", m, err)
		}
	})
	t.Run("admin-prohibited", func(t *testing.T) {
		testlab.Firewall(t, "icmp", 0, testlab.RejectAdminProhib)
		m, err := ping(t, testlab.ServerAddr, wait)
		if err != nil || m.Type != ipv4.ICMPTypeDestinationUnreachable || m.Code != 13 {
			t.Errorf("ping through REJECT admin-prohibited: %+v %v, want destination unreachable code 13", m, err)
		}
		m, err = ping(t, testlab.ServerAddr6, wait)
		if err != nil || m.Type != ipv6.ICMPTypeDestinationUnreachable || m.Code != 1 {
			t.Errorf("ping6 through REJECT icmp6-adm-prohibited: %+v %v, want destination unreachable code 1", m, err)
		}
	})
	if m, err := ping(t, testlab.ServerAddr, wait); err != nil || m.Type != ipv4.ICMPTypeEchoReply {
		t.Errorf("ping after the rules were removed: %+v %v", m, err)
	}
}

func TestFirewallRejectsBadRequests(t *testing.T) {
	testlab.Require(t)
	for _, args := range [][]string{
		{"fw", "add", "udp", "53", "tcp-reset"},
		{"fw", "add", "tcp", "0", "drop"},
		{"fw", "add", "icmp", "80", "drop"},
		{"fw", "add", "sctp", "80", "drop"},
		{"fw", "add", "tcp", "80", "reject"},
		{"fw", "flip", "tcp", "80", "drop"},
	} {
		if out, err := exec.Command(testlab.Script(), args...).CombinedOutput(); err == nil {
			t.Errorf("lab.sh %v succeeded:\n%s", args, out)
		}
	}
}
