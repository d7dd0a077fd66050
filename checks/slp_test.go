package checks

import (
	"encoding/binary"
	"io"
	"net"
	"testing"

	"github.com/flowprobe/flowprobe/probe"
)

// slpAgent is a service agent as RFC 2608 describes it, for scope DEFAULT:
// a SrvRqst for service:service-agent draws its SAAdvert, one for
// service:printer a SrvRply with one URL, one for any other scope a
// SrvRply with SCOPE_NOT_SUPPORTED. Anything else is ignored.
func slpAgent(req []byte) []byte {
	w := wire{b: req}
	version, fn, _ := w.u8(), w.u8(), w.u24()
	w.bytes(5) // flags, next extension offset
	xid := w.u16()
	lang := w.str16()
	_ = w.str16() // previous responders
	stype, scopes := w.str16(), w.str16()
	if w.err != nil || version != 2 || fn != slpSrvRqst {
		return nil
	}
	str := func(b []byte, s string) []byte {
		return append(binary.BigEndian.AppendUint16(b, uint16(len(s))), s...)
	}
	switch {
	case scopes != "DEFAULT":
		return slpMessage(slpSrvRply, xid, lang, []byte{0, 4, 0, 0})
	case stype == "service:service-agent":
		var body []byte
		body = str(body, "service:service-agent://192.0.2.7")
		body = str(body, "DEFAULT")
		body = str(body, "(service-type=service:printer)")
		body = append(body, 0) // no authentication blocks
		return slpMessage(slpSAAdvert, xid, lang, body)
	case stype == "service:printer":
		body := []byte{0, 0, 0, 1, 0, 0, 60}
		body = str(body, "service:printer:lpr://192.0.2.7/queue")
		body = append(body, 0)
		return slpMessage(slpSrvRply, xid, lang, body)
	}
	return slpMessage(slpSrvRply, xid, lang, []byte{0, 0, 0, 0})
}

func TestSLPCheck(t *testing.T) {
	agent := loopbackUDPPeer(t, slpAgent)
	silent := loopbackUDPPeer(t, func([]byte) []byte { return nil })
	junk := loopbackUDPPeer(t, func([]byte) []byte { return garbage })
	huge := loopbackUDPPeer(t, func([]byte) []byte { return hugeReply })
	otherXID := loopbackUDPPeer(t, func(req []byte) []byte {
		b := slpAgent(req)
		b[10] ^= 0xff
		return b
	})
	echo := loopbackUDPPeer(t, func(req []byte) []byte { return req })
	tcpAgent := framedTCPPeer(t, slpFraming.read, slpAgent)
	tcpHangUp := loopbackTCPPeer(t, hangUpServe)
	tcpClose := framedTCPPeer(t, slpFraming.read, func([]byte) []byte { return nil })
	tcpSilent := loopbackTCPPeer(t, silentServe)
	tcpHuge := loopbackTCPPeer(t, func(c net.Conn) {
		_, _ = io.ReadFull(c, make([]byte, 5))
		_, _ = c.Write([]byte{2, 2, 0xff, 0xff, 0xff})
	})
	tcp := map[string]any{"transport": "tcp"}

	runExchangeCases(t, "slp", []exchangeCase{
		{name: "SAAdvert", port: agent, want: probe.OutcomeOK,
			details: map[string]string{"slp_function": "SAAdvert", "url": "service:service-agent://192.0.2.7", "scopes": "DEFAULT"}},
		{name: "SrvRply with a URL", port: agent, raw: map[string]any{"service_type": "service:printer"}, want: probe.OutcomeOK,
			details: map[string]string{"slp_function": "SrvRply", "url": "service:printer:lpr://192.0.2.7/queue"}},
		{name: "over tcp", port: tcpAgent, proto: probe.TCP, raw: tcp, want: probe.OutcomeOK,
			details: map[string]string{"slp_function": "SAAdvert"}},
		{name: "scope not supported", port: agent, raw: map[string]any{"scopes": "LAB"}, want: probe.OutcomeProtocolError,
			reason: "the agent answered SCOPE_NOT_SUPPORTED"},
		{name: "closed port", port: loopbackClosedUDPPort(t), want: probe.OutcomeRefused},
		{name: "silence", port: silent, timeout: shortWait, want: probe.OutcomeNoResponse, reason: "open or filtered"},
		{name: "garbage", port: junk, want: probe.OutcomeProtocolError, reason: "not an SLPv2 message"},
		{name: "huge reply", port: huge, want: probe.OutcomeProtocolError, reason: "not an SLPv2 message"},
		{name: "another transaction", port: otherXID, want: probe.OutcomeProtocolError, reason: "does not match the request's"},
		{name: "echoed request", port: echo, want: probe.OutcomeProtocolError, reason: "SLP function 1 is not a reply"},
		{name: "tcp hang-up", port: tcpHangUp, proto: probe.TCP, raw: tcp, want: probe.OutcomeProtocolError, reason: "reset after connect"},
		{name: "tcp close after the request", port: tcpClose, proto: probe.TCP, raw: tcp, want: probe.OutcomeProtocolError, reason: "the server closed the connection"},
		{name: "tcp silence", port: tcpSilent, proto: probe.TCP, raw: tcp, timeout: shortWait, want: probe.OutcomeServiceTimeout},
		{name: "tcp reply too large", port: tcpHuge, proto: probe.TCP, raw: tcp, want: probe.OutcomeProtocolError, reason: "announces more than"},
		{name: "tcp closed port", port: loopbackClosedTCPPort(t), proto: probe.TCP, raw: tcp, want: probe.OutcomeRefused},
	})
}

func TestSLPOptions(t *testing.T) {
	for _, raw := range []map[string]any{
		{"transport": "sctp"}, {"service_type": "printer"}, {"language": ""}, {"scopes": string(make([]byte, 300))},
	} {
		if _, err := Decode("slp", raw); err == nil {
			t.Errorf("Decode(%v) accepted", raw)
		}
	}
}

func FuzzParseSLPReply(f *testing.F) {
	seedCorpus(f, "FuzzParseSLPReply")
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := parseSLPReply(b, 0x1234)
		if err == nil && rep.function == "" {
			t.Errorf("accepted %q without a function", b)
		}
	})
}
