package checks

import (
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/flowprobe/flowprobe/probe"
)

// zoneHandler answers for a small example.org zone like a directory's DNS.
func zoneHandler(w dns.ResponseWriter, q *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(q)
	m.Authoritative = true
	name := strings.ToLower(q.Question[0].Name)
	rr := func(s string) dns.RR {
		r, err := dns.NewRR(s)
		if err != nil {
			panic(err)
		}
		return r
	}
	switch {
	case name == "." && q.Question[0].Qtype == dns.TypeSOA:
		m.Answer = append(m.Answer, rr(". 60 IN SOA a.root-servers.net. nstld.verisign-grs.com. 2024010100 1800 900 604800 86400"))
	case name == "lab.example.org." && q.Question[0].Qtype == dns.TypeA:
		m.Answer = append(m.Answer, rr("lab.example.org. 60 IN A 192.0.2.10"))
	case name == "lab.example.org." && q.Question[0].Qtype == dns.TypeAAAA:
		m.Answer = append(m.Answer, rr("lab.example.org. 60 IN AAAA 2001:db8::10"))
	case name == "lab.example.org.":
		// NODATA
	case name == "_ldap._tcp.example.org." && q.Question[0].Qtype == dns.TypeSRV:
		m.Answer = append(m.Answer,
			rr("_ldap._tcp.example.org. 60 IN SRV 0 100 389 dc1.example.org."),
			rr("_ldap._tcp.example.org. 60 IN SRV 0 100 389 dc2.example.org."))
	case name == "example.org." && q.Question[0].Qtype == dns.TypeTXT:
		m.Answer = append(m.Answer, rr(`example.org. 60 IN TXT "v=spf1 " "-all"`))
	case name == "many.example.org.":
		for i := range 20 {
			m.Answer = append(m.Answer, rr("many.example.org. 60 IN A 192.0.2."+strconv.Itoa(i+1)))
		}
	case name == "refused.example.org.":
		m.Rcode = dns.RcodeRefused
	case !q.RecursionDesired && name == "recursive.example.net.":
		m.Rcode = dns.RcodeRefused
	case name == "recursive.example.net.":
		m.Answer = append(m.Answer, rr("recursive.example.net. 60 IN A 198.51.100.7"))
	default:
		m.Rcode = dns.RcodeNameError
	}
	_ = w.WriteMsg(m)
}

// startDNS starts a DNS server for the zone on 127.0.0.1, over UDP and TCP on
// the same port number, and returns the port.
func startDNS(t *testing.T) int {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			pc.Close()
			continue // the TCP port is taken; try another number
		}
		for _, s := range []*dns.Server{
			{PacketConn: pc, Handler: dns.HandlerFunc(zoneHandler)},
			{Listener: ln, Handler: dns.HandlerFunc(zoneHandler)},
		} {
			started := make(chan struct{})
			s.NotifyStartedFunc = func() { close(started) }
			go func() { _ = s.ActivateAndServe() }()
			<-started
			t.Cleanup(func() { _ = s.Shutdown() })
		}
		return port
	}
	t.Fatal("no free port for UDP and TCP")
	return 0
}

func dnsTarget(t *testing.T, port int, raw map[string]any) probe.Target {
	t.Helper()
	opts, err := Decode("dns", raw)
	if err != nil {
		t.Fatalf("Decode(%v): %v", raw, err)
	}
	return probe.Target{Host: "127.0.0.1", Port: port, Check: "dns", Options: opts, Timeout: 2 * time.Second}
}

func TestDNSAnswers(t *testing.T) {
	port := startDNS(t)
	tests := []struct {
		name    string
		raw     map[string]any
		outcome probe.Outcome
		answers float64
		rcode   string
		reason  string
	}{
		{"root SOA by default", nil, probe.OutcomeOK, 1, "NOERROR", ""},
		{"root SOA over tcp (the catalog's tcp binding)", map[string]any{"transport": "tcp"}, probe.OutcomeOK, 1, "NOERROR", ""},
		{"A", map[string]any{"name": "lab.example.org"}, probe.OutcomeOK, 1, "NOERROR", ""},
		{"A over tcp", map[string]any{"name": "lab.example.org", "transport": "tcp"}, probe.OutcomeOK, 1, "NOERROR", ""},
		{"AAAA with expected value", map[string]any{"name": "lab.example.org", "type": "AAAA", "answers": []any{"2001:db8::10"}}, probe.OutcomeOK, 1, "NOERROR", ""},
		{"SRV of a directory", map[string]any{"name": "_ldap._tcp.example.org", "type": "SRV", "min_answers": 2,
			"answers": []any{"0 100 389 dc1.example.org", `0 100 389 dc\d\.example\.org\.`}}, probe.OutcomeOK, 2, "NOERROR", ""},
		{"SRV lower case type", map[string]any{"name": "_ldap._tcp.example.org", "type": "srv"}, probe.OutcomeOK, 2, "NOERROR", ""},
		{"TXT strings joined", map[string]any{"name": "example.org", "type": "TXT", "answers": []any{"v=spf1 -all"}}, probe.OutcomeOK, 1, "NOERROR", ""},
		{"expected NXDOMAIN", map[string]any{"name": "missing.example.org", "rcode": "NXDOMAIN"}, probe.OutcomeOK, 0, "NXDOMAIN", ""},
		{"unexpected NXDOMAIN", map[string]any{"name": "missing.example.org"}, probe.OutcomeProtocolError, 0, "NXDOMAIN", "rcode NXDOMAIN, expected NOERROR"},
		{"REFUSED", map[string]any{"name": "refused.example.org"}, probe.OutcomeProtocolError, 0, "REFUSED", "rcode REFUSED, expected NOERROR"},
		{"NODATA", map[string]any{"name": "lab.example.org", "type": "MX"}, probe.OutcomeProtocolError, 0, "NOERROR", "0 answers, expected at least 1"},
		{"NODATA allowed", map[string]any{"name": "lab.example.org", "type": "MX", "min_answers": 0}, probe.OutcomeOK, 0, "NOERROR", ""},
		{"too few answers", map[string]any{"name": "_ldap._tcp.example.org", "type": "SRV", "min_answers": 3}, probe.OutcomeProtocolError, 2, "NOERROR", "2 answers, expected at least 3"},
		{"answer mismatch", map[string]any{"name": "lab.example.org", "answers": []any{"192.0.2.1"}}, probe.OutcomeProtocolError, 1, "NOERROR", `no answer matches "192.0.2.1"`},
		{"regexp must match whole value", map[string]any{"name": "lab.example.org", "answers": []any{`192\.0\.2\.1`}}, probe.OutcomeProtocolError, 1, "NOERROR", `no answer matches "192\\.0\\.2\\.1"`},
		{"recursion desired", map[string]any{"name": "recursive.example.net"}, probe.OutcomeOK, 1, "NOERROR", ""},
		{"recursion not desired", map[string]any{"name": "recursive.example.net", "recursion_desired": false}, probe.OutcomeProtocolError, 0, "REFUSED", "rcode REFUSED, expected NOERROR"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Check(t.Context(), dnsTarget(t, port, tc.raw))
			if r.Outcome != tc.outcome {
				t.Fatalf("outcome = %v (%v), want %v", r.Outcome, r.Err, tc.outcome)
			}
			if got := r.Values[ValueDNSAnswers]; got != tc.answers {
				t.Errorf("answers value = %v, want %v", got, tc.answers)
			}
			if got := r.Details["rcode"]; got != tc.rcode {
				t.Errorf("rcode detail = %q, want %q", got, tc.rcode)
			}
			if got := r.Values[ValueDNSRcode]; got != float64(dns.StringToRcode[tc.rcode]) {
				t.Errorf("rcode value = %v, want %v", got, dns.StringToRcode[tc.rcode])
			}
			if got := r.Details[probe.DetailReason]; got != tc.reason {
				t.Errorf("reason = %q, want %q", got, tc.reason)
			}
			if r.Phases[probe.PhaseRequest] == 0 {
				t.Error("request phase not timed")
			}
		})
	}
}

func TestDNSDetailAnswersBounded(t *testing.T) {
	port := startDNS(t)
	r := Check(t.Context(), dnsTarget(t, port, map[string]any{"name": "many.example.org"}))
	if r.Outcome != probe.OutcomeOK {
		t.Fatalf("outcome = %v (%v)", r.Outcome, r.Err)
	}
	if r.Values[ValueDNSAnswers] != 20 {
		t.Errorf("answers = %v, want 20", r.Values[ValueDNSAnswers])
	}
	want := "192.0.2.1, 192.0.2.2, 192.0.2.3, 192.0.2.4, 192.0.2.5, 192.0.2.6, 192.0.2.7, 192.0.2.8 (+12 more)"
	if got := r.Details["answers"]; got != want {
		t.Errorf("answers detail = %q, want %q", got, want)
	}
}

func TestDNSOptions(t *testing.T) {
	bad := []struct {
		raw  map[string]any
		want string
	}{
		{map[string]any{"name": "example.org", "type": "BOGUS"}, `type "BOGUS" is not a DNS record type`},
		{map[string]any{"name": "example.org", "rcode": "OOPS"}, `rcode "OOPS" is not a DNS response code`},
		{map[string]any{"name": "example.org", "transport": "quic"}, `transport "quic": want udp or tcp`},
		{map[string]any{"name": "example.org", "min_answers": -1}, "min_answers -1 is negative"},
		{map[string]any{"name": "example.org", "answers": []any{""}}, "answers: empty entry"},
		{map[string]any{"name": "example.org", "port": 53}, `unknown option "port"`},
	}
	for _, tc := range bad {
		_, err := Decode("dns", tc.raw)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Decode(%v) = %v, want error containing %q", tc.raw, err, tc.want)
		}
	}
	o, err := Decode("dns", map[string]any{"name": "example.org"})
	if err != nil {
		t.Fatal(err)
	}
	d := o.(*DNSOptions)
	if d.qtype != dns.TypeA || d.Transport != "udp" || d.Rcode != "NOERROR" || !d.RecursionDesired || d.minAnswers() != 1 {
		t.Errorf("defaults = %+v, min answers %d", d, d.minAnswers())
	}
	o, err = Decode("dns", nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := o.(*DNSOptions); d.name != "." || d.qtype != dns.TypeSOA {
		t.Errorf("default query %q %d, want the root SOA", d.name, d.qtype)
	}
	o, err = Decode("dns", map[string]any{"name": "missing.example.org", "rcode": "NXDOMAIN"})
	if err != nil {
		t.Fatal(err)
	}
	if n := o.(*DNSOptions).minAnswers(); n != 0 {
		t.Errorf("min answers for NXDOMAIN = %d, want 0", n)
	}
}

// rawUDPPeer answers every datagram with reply(query), in a goroutine that
// ends with the test.
func rawUDPPeer(t *testing.T, reply func(q []byte) []byte) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { pc.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if b := reply(buf[:n]); b != nil {
				_, _ = pc.WriteTo(b, addr)
			}
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

func TestDNSHostilePeers(t *testing.T) {
	answer := func(q []byte, edit func(m *dns.Msg)) []byte {
		var req dns.Msg
		if err := req.Unpack(q); err != nil {
			return nil
		}
		m := new(dns.Msg)
		m.SetReply(&req)
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: req.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1}, A: net.IPv4(192, 0, 2, 1)})
		edit(m)
		b, _ := m.Pack()
		return b
	}
	tests := []struct {
		name    string
		reply   func(q []byte) []byte
		outcome probe.Outcome
		errText string
	}{
		{"garbage", func([]byte) []byte { return []byte("SSH-2.0-OpenSSH_9.2\r\n") }, probe.OutcomeProtocolError, "dns reply"},
		{"wrong ID", func(q []byte) []byte { return answer(q, func(m *dns.Msg) { m.Id++ }) }, probe.OutcomeProtocolError, "does not match query ID"},
		{"echo", func(q []byte) []byte { return q }, probe.OutcomeProtocolError, "QR bit clear"},
		{"other question", func(q []byte) []byte {
			return answer(q, func(m *dns.Msg) { m.Question[0].Name = "other.example.org." })
		}, probe.OutcomeProtocolError, "answers another question"},
		{"silence", func([]byte) []byte { return nil }, probe.OutcomeTimeout, ""},
		{"good", func(q []byte) []byte { return answer(q, func(*dns.Msg) {}) }, probe.OutcomeOK, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			port := rawUDPPeer(t, tc.reply)
			tg := dnsTarget(t, port, map[string]any{"name": "lab.example.org"})
			tg.Timeout = 300 * time.Millisecond
			r := Check(t.Context(), tg)
			if r.Outcome != tc.outcome {
				t.Fatalf("outcome = %v (%v), want %v", r.Outcome, r.Err, tc.outcome)
			}
			if tc.errText != "" && !strings.Contains(r.Error(), tc.errText) {
				t.Errorf("error %q does not contain %q", r.Error(), tc.errText)
			}
		})
	}
}

func TestDNSClosedPorts(t *testing.T) {
	// A UDP port that nothing listens on: the connected socket sees the
	// ICMP port unreachable.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	udpPort := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcpPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	r := Check(t.Context(), dnsTarget(t, udpPort, map[string]any{"name": "lab.example.org"}))
	if r.Outcome != probe.OutcomeRefused {
		t.Errorf("udp: outcome = %v (%v), want refused", r.Outcome, r.Err)
	}
	r = Check(t.Context(), dnsTarget(t, tcpPort, map[string]any{"name": "lab.example.org", "transport": "tcp"}))
	if r.Outcome != probe.OutcomeRefused {
		t.Errorf("tcp: outcome = %v (%v), want refused", r.Outcome, r.Err)
	}
}

func TestDNSTCPHangUpAndSilence(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for i := 0; ; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if i == 0 {
				// Hang up after reading the query, or at once on the second
				// connection (the kernel answers the query with a reset).
				var n [2]byte
				if _, err := io.ReadFull(c, n[:]); err == nil {
					_, _ = io.ReadFull(c, make([]byte, binary.BigEndian.Uint16(n[:])))
				}
				c.Close()
				continue
			}
			if i == 1 {
				c.Close()
				continue
			}
			// Promise a huge message, then say nothing more.
			_, _ = c.Write([]byte{0xff, 0xff, 0x12})
			held = append(held, c)
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	raw := map[string]any{"name": "lab.example.org", "transport": "tcp"}
	for _, what := range []string{"hang-up after the query", "hang-up at once"} {
		r := Check(t.Context(), dnsTarget(t, port, raw))
		if r.Outcome != probe.OutcomeProtocolError || !strings.Contains(r.Error(), "the server closed the connection") {
			t.Errorf("%s: outcome = %v (%v), want protocol_error", what, r.Outcome, r.Err)
		}
	}
	tg := dnsTarget(t, port, raw)
	tg.Timeout = 300 * time.Millisecond
	r := Check(t.Context(), tg)
	if r.Outcome != probe.OutcomeServiceTimeout {
		t.Errorf("silence: outcome = %v (%v), want service_timeout", r.Outcome, r.Err)
	}
}
