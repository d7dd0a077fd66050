package checks

// Fuzz targets for what a check does with the bytes a peer sends. The seed
// corpora under testdata/fuzz/ are real replies: run one target with
//
//	go test -run '^$' -fuzz '^FuzzDNSAnswer$' -fuzztime 10s ./checks

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/beevik/ntp"
	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
	"github.com/gosnmp/gosnmp"
	"github.com/miekg/dns"

	"github.com/flowprobe/flowprobe/probe"
)

// fuzzOptions decodes options for kind or fails the fuzz setup.
func fuzzOptions[T any](f *testing.F, kind string, raw map[string]any) *T {
	f.Helper()
	o, err := Decode(kind, raw)
	if err != nil {
		f.Fatal(err)
	}
	return o.(*T)
}

// wantFailureOutcome checks that a refused reply fails as protocol_error
// (or auth_error where the protocol says so), never as a path outcome.
func wantFailureOutcome(t *testing.T, r probe.Result) {
	t.Helper()
	switch r.Outcome {
	case probe.OutcomeOK, probe.OutcomeProtocolError, probe.OutcomeAuthError:
	default:
		t.Fatalf("outcome %v (%v) for a reply that arrived", r.Outcome, r.Err)
	}
	if len(r.Error()) > MaxErrorBytes {
		t.Fatalf("error of %d bytes", len(r.Error()))
	}
}

// dnsSeedQuery is the question the DNS seeds answer.
func dnsSeedQuery() *dns.Msg {
	q := new(dns.Msg)
	q.SetQuestion("example.org.", dns.TypeA)
	q.Id = 0x1234
	return q
}

// dnsSeedReply is a real answer to dnsSeedQuery.
func dnsSeedReply() []byte {
	m := new(dns.Msg)
	m.SetReply(dnsSeedQuery())
	m.Authoritative = true
	for _, ip := range []string{"192.0.2.10", "192.0.2.11"} {
		rr, _ := dns.NewRR("example.org. 300 IN A " + ip)
		m.Answer = append(m.Answer, rr)
	}
	b, _ := m.Pack()
	return b
}

// FuzzDNSAnswer: a reply datagram, unpacked and judged as the dns check
// does after its exchange.
func FuzzDNSAnswer(f *testing.F) {
	f.Add(dnsSeedReply())
	o := fuzzOptions[DNSOptions](f, "dns", map[string]any{"name": "example.org", "answers": []any{"192.0.2.10"}})
	f.Fuzz(func(t *testing.T, b []byte) {
		reply := new(dns.Msg)
		if err := reply.Unpack(b); err != nil {
			return // ReadMsg reports it as a reply that does not parse
		}
		var r probe.Result
		r = isolate(context.Background(), probe.CheckerFunc(func(context.Context, probe.Target) probe.Result {
			return finish(&r, judgeDNS(&r, o, dnsSeedQuery(), reply))
		}), probe.Target{Check: "dns"})
		wantFailureOutcome(t, r)
		if r.Values[ValueDNSAnswers] != float64(len(reply.Answer)) {
			t.Fatalf("answer count %v, reply has %d", r.Values[ValueDNSAnswers], len(reply.Answer))
		}
	})
}

// ntpSeedReply is the reply of a synchronised stratum 2 server at now, in
// the layout of RFC 5905 (as chrony sends it).
func ntpSeedReply(now time.Time) []byte {
	ts := func(t time.Time) uint64 {
		secs := uint64(t.Unix() + 2208988800) // NTP era 0 starts in 1900
		return secs<<32 | uint64(t.Nanosecond())<<32/1e9
	}
	b := make([]byte, 48)
	b[0] = 0<<6 | 4<<3 | 4 // leap none, version 4, server
	b[1], b[2], b[3] = 2, 6, 0xe8
	binary.BigEndian.PutUint32(b[4:], 0x00000b5c)  // root delay ~44 ms
	binary.BigEndian.PutUint32(b[8:], 0x00000a6c)  // root dispersion ~40 ms
	binary.BigEndian.PutUint32(b[12:], 0xc0000201) // reference: 192.0.2.1
	binary.BigEndian.PutUint64(b[16:], ts(now.Add(-30*time.Second)))
	binary.BigEndian.PutUint64(b[32:], ts(now))
	binary.BigEndian.PutUint64(b[40:], ts(now.Add(50*time.Microsecond)))
	return b
}

// fakeNTPConn answers the client's request with reply, the request's
// transmit time copied into the reply's origin time (as a server does).
type fakeNTPConn struct {
	net.Conn
	reply []byte
	req   []byte
}

func (c *fakeNTPConn) Write(b []byte) (int, error) {
	c.req = append([]byte(nil), b...)
	return len(b), nil
}
func (c *fakeNTPConn) Read(b []byte) (int, error) {
	if c.reply == nil {
		return 0, io.EOF
	}
	out := append([]byte(nil), c.reply...)
	if len(out) >= 32 && len(c.req) >= 48 {
		copy(out[24:32], c.req[40:48])
	}
	c.reply = nil
	return copy(b, out), nil
}
func (c *fakeNTPConn) Close() error                     { return nil }
func (c *fakeNTPConn) SetDeadline(time.Time) error      { return nil }
func (c *fakeNTPConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fakeNTPConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzNTPReply: a reply datagram, parsed by the ntp library and judged as
// the ntp check does, inside the isolation every check runs in (the
// library panics on some replies, e.g. a poll exponent of -128: see
// testdata/fuzz/FuzzNTPReply).
func FuzzNTPReply(f *testing.F) {
	f.Add(ntpSeedReply(time.Now()))
	o := fuzzOptions[NTPOptions](f, "ntp", map[string]any{"max_offset": "1s"})
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil))) // a caught panic logs its stack
	f.Fuzz(func(t *testing.T, b []byte) {
		r := isolate(context.Background(), probe.CheckerFunc(func(context.Context, probe.Target) probe.Result {
			var r probe.Result
			opts := ntp.QueryOptions{Timeout: time.Second, Dialer: func(string, string) (net.Conn, error) {
				return &fakeNTPConn{reply: b}, nil
			}}
			resp, err := ntp.QueryWithOptions("192.0.2.123:123", opts)
			if err != nil {
				return finish(&r, Fail(probe.OutcomeProtocolError, "ntp query: %w", err))
			}
			return finish(&r, judgeNTP(&r, o, resp))
		}), probe.Target{Check: "ntp"})
		wantFailureOutcome(t, r)
	})
}

// snmpSeedReply is an SNMPv2c GetResponse with sysDescr and sysUpTime.
func snmpSeedReply() []byte {
	p := &gosnmp.SnmpPacket{Version: gosnmp.Version2c, Community: "public", PDUType: gosnmp.GetResponse, RequestID: 7,
		Variables: []gosnmp.SnmpPDU{
			{Name: snmpSysDescr, Type: gosnmp.OctetString, Value: []byte("Linux pool-master 6.1.0 x86_64")},
			{Name: snmpSysUpTime, Type: gosnmp.TimeTicks, Value: uint32(123456)},
		}}
	b, _ := p.MarshalMsg()
	return b
}

// FuzzSNMPResponse: a response datagram, decoded by gosnmp and judged as
// the snmp check does, inside the isolation every check runs in.
func FuzzSNMPResponse(f *testing.F) {
	f.Add(snmpSeedReply())
	o := fuzzOptions[SNMPOptions](f, "snmp", map[string]any{"version": "2c"})
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil))) // a caught panic logs its stack
	f.Fuzz(func(t *testing.T, b []byte) {
		r := isolate(context.Background(), probe.CheckerFunc(func(context.Context, probe.Target) probe.Result {
			var r probe.Result
			g := &gosnmp.GoSNMP{Version: gosnmp.Version2c, Community: "public", Logger: gosnmp.NewLogger(nil)}
			pkt, err := g.SnmpDecodePacket(b)
			if err != nil {
				return finish(&r, Fail(probe.OutcomeProtocolError, "snmp get: %w", err))
			}
			return finish(&r, snmpJudge(o, pkt, &r))
		}), probe.Target{Check: "snmp"})
		wantFailureOutcome(t, r)
	})
}

// FuzzLDAPRead: the bytes of one LDAP message, read within the bounds and
// decoded, then looked at as the StartTLS answer is.
func FuzzLDAPRead(f *testing.F) {
	f.Add(ldapMessage(1, ldapResultOp(ldap.ApplicationBindResponse, 0, "")))
	f.Add(ldapMessage(2, ldapEntryOp("", map[string][]string{"namingContexts": {"dc=example,dc=org"}, "supportedLDAPVersion": {"3"}})))
	f.Add(tinyElementsMessage(8))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ldapReadPacket(bytes.NewReader(b))
		if err != nil {
			if Classify(err, true) != probe.OutcomeProtocolError && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("refused with %v (%v), want protocol_error", Classify(err, true), err)
			}
			return
		}
		if n := countElements(p); n > ldapMaxElements {
			t.Fatalf("accepted a message of %d elements", n)
		}
		if len(p.Children) >= 2 {
			_ = ldap.GetLDAPError(p)
		}
	})
}

// countElements counts p and every packet below it.
func countElements(p *ber.Packet) int {
	n := 1
	for _, c := range p.Children {
		n += countElements(c)
	}
	return n
}

// FuzzResponderWire: a line the responder or the client receives. A valid
// hello yields a nonce the client's own hello carries back; nothing panics.
func FuzzResponderWire(f *testing.F) {
	nonce := "0123456789abcdef0123456789abcdef"
	f.Add([]byte("FLOWPROBE/1 HELLO " + nonce + " ....\n"))
	f.Add([]byte("FLOWPROBE/1 ACK " + nonce + " node-b tcp/7365 192.0.2.1:50000\n"))
	f.Add([]byte("FLOWPROBE/1 ERR not a hello\n"))
	f.Add([]byte("SSH-2.0-OpenSSH_9.2\r\n"))
	f.Fuzz(func(t *testing.T, line []byte) {
		if got, ok := parseHello(line); ok {
			if back, ok := parseHello(responderHello(got, 0)); !ok || back != got {
				t.Fatalf("nonce %q does not survive its own hello (%q, %v)", got, back, ok)
			}
			if strings.ContainsAny(got, " \n") {
				t.Fatalf("nonce %q", got)
			}
		}
		_, _, _ = parseResponderAck(line, nonce)
	})
}
