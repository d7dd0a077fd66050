package checks

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/bpf"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/flowprobe/flowprobe/probe"
)

// quoted builds the original datagram an ICMP error quotes: the IP header
// of an echo request to dst and its first 8 bytes.
func quoted(dst netip.Addr, id, seq uint16) []byte {
	echo := []byte{8, 0, 0, 0, 0, 0, 0, 0}
	if dst.Is6() {
		echo[0] = 128
	}
	binary.BigEndian.PutUint16(echo[4:], id)
	binary.BigEndian.PutUint16(echo[6:], seq)
	if dst.Is6() {
		h := make([]byte, 40)
		h[0] = 6 << 4
		binary.BigEndian.PutUint16(h[4:], 64)
		h[6], h[7] = 58, 64
		copy(h[8:24], netip.MustParseAddr("2001:db8::1").AsSlice())
		copy(h[24:40], dst.AsSlice())
		return append(h, echo...)
	}
	h := make([]byte, 20)
	h[0] = 4<<4 | 5
	binary.BigEndian.PutUint16(h[2:], 84)
	h[8], h[9] = 64, 1
	copy(h[12:16], []byte{192, 0, 2, 1})
	copy(h[16:20], dst.AsSlice())
	return append(h, echo...)
}

func marshal(t *testing.T, m icmp.Message) []byte {
	t.Helper()
	b, err := m.Marshal(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestICMPDecode(t *testing.T) {
	dst4 := netip.MustParseAddr("192.0.2.10")
	dst6 := netip.MustParseAddr("2001:db8::10")
	router4 := netip.MustParseAddr("198.51.100.1")
	router6 := netip.MustParseAddr("2001:db8:ff::1")
	const id, seq, token = 0x1234, 7, 0x0102030405060708
	tokenData := binary.BigEndian.AppendUint64(nil, token)
	unreach4 := func(code int, data []byte) []byte {
		return marshal(t, icmp.Message{Type: ipv4.ICMPTypeDestinationUnreachable, Code: code, Body: &icmp.DstUnreach{Data: data}})
	}
	unreach6 := func(code int, data []byte) []byte {
		return marshal(t, icmp.Message{Type: ipv6.ICMPTypeDestinationUnreachable, Code: code, Body: &icmp.DstUnreach{Data: data}})
	}
	tests := []struct {
		name      string
		v6        bool
		dgram     bool
		msg       []byte
		from      netip.Addr
		delivered bool
		unreach   string // icmpError.String(), "" for an echo reply
	}{
		{"admin prohibited", false, false, unreach4(13, quoted(dst4, id, seq)), router4, true,
			"destination unreachable code 13 (communication administratively prohibited) from 198.51.100.1"},
		{"host prohibited", false, false, unreach4(10, quoted(dst4, id, seq)), router4, true,
			"destination unreachable code 10 (host administratively prohibited) from 198.51.100.1"},
		{"net prohibited", false, false, unreach4(9, quoted(dst4, id, seq)), router4, true,
			"destination unreachable code 9 (net administratively prohibited) from 198.51.100.1"},
		{"host unreachable", false, false, unreach4(1, quoted(dst4, id, seq)), router4, true,
			"destination unreachable code 1 (host unreachable) from 198.51.100.1"},
		{"net unreachable", false, false, unreach4(0, quoted(dst4, id, seq)), router4, true,
			"destination unreachable code 0 (net unreachable) from 198.51.100.1"},
		{"time exceeded", false, false, marshal(t, icmp.Message{Type: ipv4.ICMPTypeTimeExceeded, Body: &icmp.TimeExceeded{Data: quoted(dst4, id, seq)}}), router4, true,
			"time exceeded code 0 (hop limit exceeded in transit) from 198.51.100.1"},
		{"another ID", false, false, unreach4(13, quoted(dst4, id+1, seq)), router4, false, ""},
		{"another seq", false, false, unreach4(13, quoted(dst4, id, seq+1)), router4, false, ""},
		{"another destination", false, false, unreach4(13, quoted(netip.MustParseAddr("192.0.2.11"), id, seq)), router4, false, ""},
		{"quote too short", false, false, unreach4(13, quoted(dst4, id, seq)[:24]), router4, false, ""},
		{"quote not an echo", false, false, unreach4(13, append(quoted(dst4, id, seq)[:20], 0, 0, 0, 0, 0x12, 0x34, 0, 7)), router4, false, ""},
		{"garbage", false, false, []byte{3, 13, 0}, router4, false, ""},
		{"v6 admin prohibited", true, false, unreach6(1, quoted(dst6, id, seq)), router6, true,
			"destination unreachable code 1 (communication administratively prohibited) from 2001:db8:ff::1"},
		{"v6 no route", true, false, unreach6(0, quoted(dst6, id, seq)), router6, true,
			"destination unreachable code 0 (no route to destination) from 2001:db8:ff::1"},
		{"v6 another seq", true, false, unreach6(1, quoted(dst6, id, seq+1)), router6, false, ""},
		{"echo reply", false, false, marshal(t, icmp.Message{Type: ipv4.ICMPTypeEchoReply, Body: &icmp.Echo{ID: id, Seq: seq, Data: tokenData}}), dst4, true, ""},
		{"echo reply, stale token", false, false, marshal(t, icmp.Message{Type: ipv4.ICMPTypeEchoReply, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("12345678")}}), dst4, false, ""},
		{"echo reply from another host", false, false, marshal(t, icmp.Message{Type: ipv4.ICMPTypeEchoReply, Body: &icmp.Echo{ID: id, Seq: seq, Data: tokenData}}), router4, false, ""},
		{"echo reply, another ID", false, false, marshal(t, icmp.Message{Type: ipv4.ICMPTypeEchoReply, Body: &icmp.Echo{ID: id + 1, Seq: seq, Data: tokenData}}), dst4, false, ""},
		{"echo reply, datagram socket ignores ID", false, true, marshal(t, icmp.Message{Type: ipv4.ICMPTypeEchoReply, Body: &icmp.Echo{ID: id + 1, Seq: seq, Data: tokenData}}), dst4, true, ""},
		{"echo request", false, false, marshal(t, icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq, Data: tokenData}}), dst4, false, ""},
		{"v6 echo reply", true, false, marshal(t, icmp.Message{Type: ipv6.ICMPTypeEchoReply, Body: &icmp.Echo{ID: id, Seq: seq, Data: tokenData}}), dst6, true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := &icmpEndpoint{v6: tc.v6}
			s := &icmpSocket{raw: !tc.dgram, id: id, waiting: map[uint16]*echoWait{}}
			dst, proto := dst4, 1
			if tc.v6 {
				dst, proto = dst6, 58
			}
			w := &echoWait{dst: dst, seq: seq, token: token, ch: make(chan echoEvent, 1)}
			s.waiting[seq] = w
			at := time.Unix(1700000000, 0)
			e.dispatch(s, proto, tc.msg, tc.from, at)
			select {
			case ev := <-w.ch:
				if !tc.delivered {
					t.Fatalf("delivered %+v, want nothing", ev)
				}
				if !ev.at.Equal(at) {
					t.Errorf("at = %v, want %v", ev.at, at)
				}
				got := ""
				if ev.unreach != nil {
					got = ev.unreach.String()
				}
				if got != tc.unreach {
					t.Errorf("unreach = %q, want %q", got, tc.unreach)
				}
				if s.waiting[seq] != nil {
					t.Error("waiter still registered after delivery")
				}
			default:
				if tc.delivered {
					t.Fatal("nothing delivered")
				}
				if s.waiting[seq] != w {
					t.Error("waiter dropped without a delivery")
				}
			}
		})
	}
}

func TestICMPVerdict(t *testing.T) {
	dst := netip.MustParseAddr("192.0.2.10")
	unreach := &icmpError{typ: 3, code: 13, from: netip.MustParseAddr("198.51.100.1")}
	sendErr := fmt.Errorf("icmp echo to %s: %w", dst, os.NewSyscallError("sendto", syscall.ENETUNREACH))
	tests := []struct {
		name                 string
		sent, received       int
		rttSum               time.Duration
		unreach              *icmpError
		err                  error
		outcome              probe.Outcome
		loss, rtt            float64
		hasLoss, hasRTT      bool
		reason, code, origin string
	}{
		{"all replies", 3, 3, 3 * time.Millisecond, nil, nil, probe.OutcomeOK, 0, 0.001, true, true, "", "", ""},
		{"one reply is enough", 3, 1, 2 * time.Millisecond, nil, nil, probe.OutcomeOK, 2.0 / 3, 0.002, true, true, "", "", ""},
		{"reply then unreachable", 2, 1, time.Millisecond, unreach, nil, probe.OutcomeOK, 0.5, 0.001, true, true, "", "", ""},
		{"admin prohibited", 1, 0, 0, unreach, nil, probe.OutcomeUnreachable, 1, 0, true, false,
			"destination unreachable code 13 (communication administratively prohibited) from 198.51.100.1", "13", "198.51.100.1"},
		{"silence", 3, 0, 0, nil, nil, probe.OutcomeTimeout, 1, 0, true, false, "no reply to 3 echo requests", "", ""},
		{"no route", 0, 0, 0, nil, sendErr, probe.OutcomeUnreachable, 0, 0, false, false, "", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r probe.Result
			r = finish(&r, icmpVerdict(&r, dst, tc.sent, tc.received, tc.rttSum, tc.unreach, tc.err))
			if r.Outcome != tc.outcome {
				t.Fatalf("outcome = %v (%v), want %v", r.Outcome, r.Err, tc.outcome)
			}
			if loss, ok := r.Values[ValueICMPLoss]; ok != tc.hasLoss || loss != tc.loss {
				t.Errorf("loss = %v (set %v), want %v (set %v)", loss, ok, tc.loss, tc.hasLoss)
			}
			if rtt, ok := r.Values[ValueICMPRTT]; ok != tc.hasRTT || rtt != tc.rtt {
				t.Errorf("rtt = %v (set %v), want %v (set %v)", rtt, ok, tc.rtt, tc.hasRTT)
			}
			if got := r.Details[probe.DetailReason]; got != tc.reason {
				t.Errorf("reason = %q, want %q", got, tc.reason)
			}
			if got := r.Details["icmp_code"]; got != tc.code {
				t.Errorf("icmp_code = %q, want %q", got, tc.code)
			}
			if got := r.Details["icmp_from"]; got != tc.origin {
				t.Errorf("icmp_from = %q, want %q", got, tc.origin)
			}
		})
	}
}

// TestICMPErrorThroughSocket sends a crafted Destination Unreachable to the
// loopback and checks that the reader of the shared raw socket hands it to
// the echo it quotes.
func TestICMPErrorThroughSocket(t *testing.T) {
	needRaw(t, "ip4:icmp")
	p := newPinger(icmp.ListenPacket)
	s, err := p.v4.acquire()
	if err != nil {
		t.Fatal(err)
	}
	defer p.v4.release(s)
	// An echo to a documentation address that is registered but never sent.
	dst := netip.MustParseAddr("192.0.2.10")
	w := &echoWait{dst: dst, token: 1, ch: make(chan echoEvent, 1)}
	p.v4.mu.Lock()
	p.v4.seq++
	w.seq = p.v4.seq
	s.waiting[w.seq] = w
	p.v4.mu.Unlock()

	router, err := icmp.ListenPacket("ip4:icmp", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer router.Close()
	msg := marshal(t, icmp.Message{Type: ipv4.ICMPTypeDestinationUnreachable, Code: 13, Body: &icmp.DstUnreach{Data: quoted(dst, s.id, w.seq)}})
	if _, err := router.WriteTo(msg, &net.IPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-w.ch:
		if ev.unreach == nil || ev.unreach.code != 13 || ev.unreach.from != netip.MustParseAddr("127.0.0.1") {
			t.Errorf("event %+v, want code 13 from 127.0.0.1", ev.unreach)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the Destination Unreachable did not reach the waiting echo")
	}
}

func TestICMPEchoFilter(t *testing.T) {
	const id = 0x4242
	ipHeader := func(ihl int) []byte {
		h := make([]byte, ihl*4)
		h[0] = 4<<4 | byte(ihl)
		h[9] = 1
		return h
	}
	echo := func(typ byte, echoID uint16) []byte {
		b := []byte{typ, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8}
		binary.BigEndian.PutUint16(b[4:], echoID)
		return b
	}
	tests := []struct {
		name   string
		v6     bool
		packet []byte
		pass   bool
	}{
		{"our reply", false, append(ipHeader(5), echo(0, id)...), true},
		{"our reply after IP options", false, append(ipHeader(7), echo(0, id)...), true},
		{"another pinger's reply", false, append(ipHeader(5), echo(0, id+1)...), false},
		{"echo request", false, append(ipHeader(5), echo(8, id)...), false},
		{"destination unreachable", false, append(ipHeader(5), echo(3, 0)...), true},
		{"time exceeded", false, append(ipHeader(5), echo(11, 0)...), true},
		{"redirect", false, append(ipHeader(5), echo(5, id)...), false},
		{"v6 our reply", true, echo(129, id), true},
		{"v6 another pinger's reply", true, echo(129, id-1), false},
		{"v6 echo request", true, echo(128, id), false},
		{"v6 destination unreachable", true, echo(1, 0), true},
		{"v6 time exceeded", true, echo(3, 0), true},
		{"v6 neighbour advertisement", true, echo(136, id), false},
	}
	for _, tc := range tests {
		vm, err := bpf.NewVM(echoFilter(tc.v6, id))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		n, err := vm.Run(tc.packet)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		// The kernel keeps min(n, length) bytes: all or nothing here.
		if pass := n >= len(tc.packet); pass != tc.pass || (!pass && n != 0) {
			t.Errorf("%s: filter returned %d for %d bytes, want pass=%v", tc.name, n, len(tc.packet), tc.pass)
		}
	}
}
