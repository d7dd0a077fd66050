package checks

import (
	"encoding/asn1"
	"testing"

	"github.com/flowprobe/flowprobe/probe"
)

type testPrincipal struct {
	NameType   int             `asn1:"explicit,tag:0"`
	NameString []asn1.RawValue `asn1:"explicit,tag:1"`
}

type testASReq struct {
	PVNO    int           `asn1:"explicit,tag:1"`
	MsgType int           `asn1:"explicit,tag:2"`
	PAData  asn1.RawValue `asn1:"optional,explicit,tag:3"`
	Body    struct {
		Options asn1.BitString `asn1:"explicit,tag:0"`
		CName   testPrincipal  `asn1:"optional,explicit,tag:1"`
		Realm   asn1.RawValue  `asn1:"explicit,tag:2"`
		SName   testPrincipal  `asn1:"optional,explicit,tag:3"`
		From    asn1.RawValue  `asn1:"optional,explicit,tag:4"`
		Till    asn1.RawValue  `asn1:"explicit,tag:5"`
		RTime   asn1.RawValue  `asn1:"optional,explicit,tag:6"`
		Nonce   int64          `asn1:"explicit,tag:7"`
		EType   []int          `asn1:"explicit,tag:8"`
	} `asn1:"explicit,tag:4"`
}

// testKRBError encodes a KRB-ERROR as RFC 4120 §5.9.1 lays it out.
func testKRBError(code int64, realm, text string, edata []byte) []byte {
	parts := [][]byte{
		derCtx(0, derInt(5)), derCtx(1, derInt(krbError)),
		derCtx(4, der(0x18, []byte("20260101000000Z"))), derCtx(5, derInt(0)),
		derCtx(6, derInt(code)), derCtx(9, derString(realm)),
		derCtx(10, derPrincipal(krbNTSrvInst, "krbtgt", realm)),
	}
	if text != "" {
		parts = append(parts, derCtx(11, derString(text)))
	}
	if edata != nil {
		parts = append(parts, derCtx(12, der(0x04, edata)))
	}
	return der(0x60|krbError, derSeq(parts...))
}

// testKDC answers an AS-REQ as a KDC that knows only the principal alice
// of realm EXAMPLE.ORG: KDC_ERR_WRONG_REALM for another realm,
// KDC_ERR_C_PRINCIPAL_UNKNOWN for another principal. Anything that is not
// an AS-REQ is ignored.
func testKDC(req []byte) []byte {
	var q testASReq
	if _, err := asn1.UnmarshalWithParams(req, &q, "application,explicit,tag:10"); err != nil || q.PVNO != 5 || q.MsgType != krbASReq {
		return nil
	}
	var realm asn1.RawValue
	if _, err := asn1.Unmarshal(q.Body.Realm.Bytes, &realm); err != nil || len(q.Body.CName.NameString) != 1 || len(q.Body.EType) == 0 {
		return nil
	}
	if string(realm.Bytes) != "EXAMPLE.ORG" {
		return testKRBError(68, "EXAMPLE.ORG", "", nil)
	}
	return testKRBError(6, "EXAMPLE.ORG", "Client not found in Kerberos database", nil)
}

func TestKerberosCheck(t *testing.T) {
	kdc := loopbackUDPPeer(t, testKDC)
	silent := loopbackUDPPeer(t, func([]byte) []byte { return nil })
	junk := loopbackUDPPeer(t, func([]byte) []byte { return garbage })
	huge := loopbackUDPPeer(t, func([]byte) []byte { return hugeReply })
	asRep := loopbackUDPPeer(t, func([]byte) []byte { return der(0x60|krbASRep, derSeq(derCtx(0, derInt(5)))) })
	badPVNO := loopbackUDPPeer(t, func([]byte) []byte {
		return der(0x60|krbError, derSeq(derCtx(0, derInt(4)), derCtx(1, derInt(krbError)),
			derCtx(4, der(0x18, []byte("20260101000000Z"))), derCtx(5, derInt(0)), derCtx(6, derInt(6)),
			derCtx(9, derString("X")), derCtx(10, derPrincipal(1, "x"))))
	})
	echo := loopbackUDPPeer(t, func(req []byte) []byte { return req })
	tcpKDC := framedTCPPeer(t, readLength4, func(req []byte) []byte { return wrapLength4WithBody(testKDC(req)) })
	tcpHangUp := loopbackTCPPeer(t, hangUpServe)
	tcpSilent := loopbackTCPPeer(t, silentServe)
	tcp := map[string]any{"transport": "tcp", "realm": "EXAMPLE.ORG"}
	realm := map[string]any{"realm": "EXAMPLE.ORG"}

	runExchangeCases(t, "kerberos", []exchangeCase{
		{name: "unknown principal", port: kdc, raw: realm, want: probe.OutcomeOK,
			details: map[string]string{"kerberos_reply": "KRB-ERROR", "kerberos_error": "KDC_ERR_C_PRINCIPAL_UNKNOWN",
				"kerberos_text": "Client not found in Kerberos database", "kerberos_realm": "EXAMPLE.ORG"}},
		{name: "wrong realm still proves the KDC", port: kdc, want: probe.OutcomeOK,
			details: map[string]string{"kerberos_error": "KDC_ERR_WRONG_REALM"}},
		{name: "AS-REP", port: asRep, want: probe.OutcomeOK, details: map[string]string{"kerberos_reply": "AS-REP"}},
		{name: "over tcp", port: tcpKDC, proto: probe.TCP, raw: tcp, want: probe.OutcomeOK,
			details: map[string]string{"kerberos_error": "KDC_ERR_C_PRINCIPAL_UNKNOWN"}},
		{name: "closed port", port: loopbackClosedUDPPort(t), want: probe.OutcomeRefused},
		{name: "silence", port: silent, timeout: shortWait, want: probe.OutcomeNoResponse, reason: "open or filtered"},
		{name: "garbage", port: junk, want: probe.OutcomeProtocolError, reason: "not a Kerberos message"},
		{name: "huge reply", port: huge, want: probe.OutcomeProtocolError, reason: "not a Kerberos message"},
		{name: "wrong pvno", port: badPVNO, want: probe.OutcomeProtocolError, reason: "KRB-ERROR with pvno 4"},
		{name: "echoed request", port: echo, want: probe.OutcomeProtocolError, reason: "not a KRB-ERROR or AS-REP"},
		{name: "tcp hang-up", port: tcpHangUp, proto: probe.TCP, raw: tcp, want: probe.OutcomeProtocolError, reason: "reset after connect"},
		{name: "tcp silence", port: tcpSilent, proto: probe.TCP, raw: tcp, timeout: shortWait, want: probe.OutcomeServiceTimeout},
		{name: "tcp closed port", port: loopbackClosedTCPPort(t), proto: probe.TCP, raw: tcp, want: probe.OutcomeRefused},
	})
	for _, raw := range []map[string]any{{"principal": "a@B"}, {"realm": "A B"}, {"transport": "quic"}} {
		if _, err := Decode("kerberos", raw); err == nil {
			t.Errorf("Decode(%v) accepted", raw)
		}
	}
}

// wrapLength4WithBody frames a reply for TCP; nil stays nil (hang up).
func wrapLength4WithBody(b []byte) []byte {
	if b == nil {
		return nil
	}
	return wrapLength4(b)
}

func TestKerberosRealm(t *testing.T) {
	for host, want := range map[string]string{
		"dc1.lab.example.org": "LAB.EXAMPLE.ORG", "dc1.example.org.": "EXAMPLE.ORG",
		"192.0.2.1": "FLOWPROBE.INVALID", "dc1": "FLOWPROBE.INVALID", "dc1.org": "FLOWPROBE.INVALID",
	} {
		if got := kerberosRealm("", host); got != want {
			t.Errorf("realm for %s = %s, want %s", host, got, want)
		}
	}
	if got := kerberosRealm("CORP.EXAMPLE", "dc1.lab.example.org"); got != "CORP.EXAMPLE" {
		t.Errorf("configured realm ignored: %s", got)
	}
}

func FuzzParseKerberosReply(f *testing.F) {
	seedCorpus(f, "FuzzParseKerberosReply")
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := parseKerberosReply(b)
		if err == nil && rep.msgType != krbError && rep.msgType != krbASRep {
			t.Errorf("accepted message type %d", rep.msgType)
		}
	})
}
