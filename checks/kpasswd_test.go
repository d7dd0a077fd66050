package checks

import (
	"encoding/binary"
	"testing"

	"github.com/flowprobe/flowprobe/probe"
)

// kpasswdFrame frames msg as a kpasswd reply (RFC 3244 §3) with no AP-REP.
func kpasswdFrame(version uint16, msg []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(6+len(msg)))
	b = binary.BigEndian.AppendUint16(b, version)
	b = binary.BigEndian.AppendUint16(b, 0)
	return append(b, msg...)
}

// testKpasswd answers a change-password request as a kpasswd server does
// when the ticket in the AP-REQ does not decrypt: a framed KRB-ERROR
// KRB_AP_ERR_MODIFIED whose e-data carries result AUTHERROR. A request
// that is not framed as one draws a bare KRB-ERROR.
func testKpasswd(req []byte) []byte {
	w := wire{b: req}
	length, version, apLen := w.u16(), w.u16(), w.u16()
	ap := w.bytes(int(apLen))
	if w.err != nil || int(length) != len(req) || version != kpasswdChange || len(ap) == 0 || ap[0] != 0x60|krbAPReq {
		return testKRBError(60, "EXAMPLE.ORG", "malformed request", nil)
	}
	return kpasswdFrame(kpasswdChange, testKRBError(41, "EXAMPLE.ORG", "", []byte{0, 3, 'b', 'a', 'd'}))
}

func TestKpasswdCheck(t *testing.T) {
	server := loopbackUDPPeer(t, testKpasswd)
	bare := loopbackUDPPeer(t, func([]byte) []byte { return testKpasswd(nil) })
	priv := loopbackUDPPeer(t, func([]byte) []byte { return kpasswdFrame(kpasswdChange, der(0x60|krbPriv, derSeq())) })
	silent := loopbackUDPPeer(t, func([]byte) []byte { return nil })
	junk := loopbackUDPPeer(t, func([]byte) []byte { return garbage })
	huge := loopbackUDPPeer(t, func([]byte) []byte { return hugeReply })
	badVersion := loopbackUDPPeer(t, func([]byte) []byte { return kpasswdFrame(7, testKRBError(41, "X", "", nil)) })
	asRep := loopbackUDPPeer(t, func([]byte) []byte { return kpasswdFrame(kpasswdChange, der(0x60|krbASRep, derSeq())) })
	tcpServer := framedTCPPeer(t, readLength4, func(req []byte) []byte { return wrapLength4(testKpasswd(req)) })
	tcpHangUp := loopbackTCPPeer(t, hangUpServe)
	tcp := map[string]any{"transport": "tcp"}

	runExchangeCases(t, "kpasswd", []exchangeCase{
		{name: "error reply", port: server, want: probe.OutcomeOK,
			details: map[string]string{"kpasswd_reply": "KRB-ERROR", "kerberos_error": "KRB_AP_ERR_MODIFIED", "kpasswd_result": "AUTHERROR"}},
		{name: "bare KRB-ERROR", port: bare, want: probe.OutcomeOK,
			details: map[string]string{"kpasswd_reply": "KRB-ERROR", "kerberos_error": "KRB_ERR_GENERIC"}},
		{name: "KRB-PRIV", port: priv, want: probe.OutcomeOK, details: map[string]string{"kpasswd_reply": "KRB-PRIV"}},
		{name: "over tcp", port: tcpServer, proto: probe.TCP, raw: tcp, want: probe.OutcomeOK,
			details: map[string]string{"kpasswd_result": "AUTHERROR"}},
		{name: "closed port", port: loopbackClosedUDPPort(t), want: probe.OutcomeRefused},
		{name: "silence", port: silent, timeout: shortWait, want: probe.OutcomeNoResponse, reason: "open or filtered"},
		{name: "garbage", port: junk, want: probe.OutcomeProtocolError, reason: "not a kpasswd reply"},
		{name: "huge reply", port: huge, want: probe.OutcomeProtocolError, reason: "not a kpasswd reply"},
		{name: "unknown version", port: badVersion, want: probe.OutcomeProtocolError, reason: "kpasswd version 0x0007"},
		{name: "AS-REP inside", port: asRep, want: probe.OutcomeProtocolError, reason: "carries an AS-REP"},
		{name: "tcp hang-up", port: tcpHangUp, proto: probe.TCP, raw: tcp, want: probe.OutcomeProtocolError, reason: "reset after connect"},
	})
}

func FuzzParseKpasswdReply(f *testing.F) {
	seedCorpus(f, "FuzzParseKpasswdReply")
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := parseKpasswdReply(b)
		if err == nil && rep.kind != "KRB-ERROR" && rep.kind != "KRB-PRIV" {
			t.Errorf("accepted a reply of kind %q", rep.kind)
		}
	})
}
