package checks

import (
	"testing"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/flowprobe/flowprobe/probe"
)

// cldapMessage encodes one LDAP message with id and operation op.
func cldapMessage(id int64, op *ber.Packet) []byte {
	msg := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	msg.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, id, ""))
	msg.AppendChild(op)
	return msg.Bytes()
}

func cldapEntry(attr string, value []byte) *ber.Packet {
	e := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationSearchResultEntry, nil, "")
	e.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", ""))
	attrs := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	a := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	a.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, attr, ""))
	vals := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSet, nil, "")
	vals.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, string(value), ""))
	a.AppendChild(vals)
	attrs.AppendChild(a)
	e.AppendChild(attrs)
	return e
}

func cldapDone(code int64, diag string) *ber.Packet {
	d := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationSearchResultDone, nil, "")
	d.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, code, ""))
	d.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", ""))
	d.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, diag, ""))
	return d
}

// cldapDC answers the LDAP ping as a domain controller does (MS-ADTS
// §6.3.3): a search of the root DSE, scope base, whose filter is an AND,
// for Netlogon draws one entry with a LOGON_SAM_LOGON_RESPONSE_EX and the
// result; another filter a protocolError; another attribute only the result.
func cldapDC(req []byte) []byte {
	p, err := ber.DecodePacketErr(req)
	if err != nil || len(p.Children) != 2 || len(p.Children[1].Children) != 8 {
		return nil
	}
	id, _ := p.Children[0].Value.(int64)
	s := p.Children[1].Children
	if ber.DecodeString(s[0].Data.Bytes()) != "" || s[1].Value.(int64) != 0 {
		return nil
	}
	if s[6].ClassType != ber.ClassContext || s[6].Tag != ldap.FilterAnd {
		return cldapMessage(id, cldapDone(ldap.LDAPResultProtocolError, "filter"))
	}
	var out []byte
	if len(s[7].Children) == 1 && ber.DecodeString(s[7].Children[0].Data.Bytes()) == "Netlogon" {
		out = cldapMessage(id, cldapEntry("netlogon", []byte{23, 0, 0, 0, 0xfd, 0x03, 0, 0}))
	}
	return append(out, cldapMessage(id, cldapDone(0, ""))...)
}

func TestCLDAPCheck(t *testing.T) {
	dc := loopbackUDPPeer(t, cldapDC)
	silent := loopbackUDPPeer(t, func([]byte) []byte { return nil })
	junk := loopbackUDPPeer(t, func([]byte) []byte { return garbage })
	huge := loopbackUDPPeer(t, func([]byte) []byte { return hugeReply })
	otherID := loopbackUDPPeer(t, func([]byte) []byte { return cldapMessage(7, cldapDone(0, "")) })
	entryOnly := loopbackUDPPeer(t, func(req []byte) []byte {
		p, _ := ber.DecodePacketErr(req)
		return cldapMessage(p.Children[0].Value.(int64), cldapEntry("Netlogon", []byte{23, 0}))
	})
	echo := loopbackUDPPeer(t, func(req []byte) []byte { return req })

	runExchangeCases(t, "cldap", []exchangeCase{
		{name: "domain controller", port: dc, want: probe.OutcomeOK,
			details: map[string]string{"netlogon": "LOGON_SAM_LOGON_RESPONSE_EX", "result_code": "0"}},
		{name: "filter not an AND", port: dc, raw: map[string]any{"filter": "(objectClass=*)"}, want: probe.OutcomeProtocolError,
			reason: "LDAP result 2 (Protocol Error) filter"},
		{name: "attribute missing", port: dc, raw: map[string]any{"attribute": "namingContexts"}, want: probe.OutcomeProtocolError,
			reason: "no namingContexts attribute in the reply"},
		{name: "closed port", port: loopbackClosedUDPPort(t), want: probe.OutcomeRefused},
		{name: "silence", port: silent, timeout: shortWait, want: probe.OutcomeNoResponse, reason: "open or filtered"},
		{name: "garbage", port: junk, want: probe.OutcomeProtocolError, reason: "not an LDAP message"},
		{name: "huge reply", port: huge, want: probe.OutcomeProtocolError, reason: "not an LDAP message"},
		{name: "another message ID", port: otherID, want: probe.OutcomeProtocolError, reason: "does not match the request's"},
		{name: "no search result", port: entryOnly, want: probe.OutcomeProtocolError, reason: "ends without a search result"},
		{name: "echoed request", port: echo, want: probe.OutcomeProtocolError, reason: "is not a search result"},
	})
	if _, err := Decode("cldap", map[string]any{"filter": "(&(NtVer="}); err == nil {
		t.Error("a broken filter decoded")
	}
}

func FuzzParseCLDAPReply(f *testing.F) {
	seedCorpus(f, "FuzzParseCLDAPReply")
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := parseCLDAPReply(b, 1, "Netlogon")
		if err == nil && rep.resultCode == 0 && len(b) == 0 {
			t.Error("an empty reply parsed")
		}
	})
}

// An entry and the result of the search in one datagram parse.
func TestParseCLDAPReplyEntryAndResult(t *testing.T) {
	b := append(cldapMessage(1, cldapEntry("Netlogon", []byte{23, 0})), cldapMessage(1, cldapDone(0, ""))...)
	if rep, err := parseCLDAPReply(b, 1, "Netlogon"); err != nil || len(rep.values) != 1 {
		t.Fatalf("%v %v", rep, err)
	}
}
