package checks

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/flowprobe/flowprobe/probe"
)

// nbstatResponse is the node status response (RFC 1002 §4.2.18) of a
// domain controller DC1 of domain LAB, answering transaction id.
func nbstatResponse(id uint16, pointer bool) []byte {
	b := binary.BigEndian.AppendUint16(nil, id)
	b = append(b, 0x84, 0x00, 0, 0, 0, 1, 0, 0, 0, 0)
	if pointer {
		b = append(b, 0xc0, 0x0c)
	} else {
		b = append(b, 32)
		b = append(b, "CK"...)
		b = append(b, bytes.Repeat([]byte("AA"), 15)...)
		b = append(b, 0)
	}
	b = append(b, 0, nbstatType, 0, nbClassIN, 0, 0, 0, 0)
	entry := func(name string, suffix byte, group bool) []byte {
		e := append([]byte(name), bytes.Repeat([]byte(" "), 15-len(name))...)
		flags := byte(0x04)
		if group {
			flags |= 0x80
		}
		return append(e, suffix, flags, 0)
	}
	rdata := []byte{4}
	rdata = append(rdata, entry("DC1", 0x00, false)...)
	rdata = append(rdata, entry("LAB", 0x00, true)...)
	rdata = append(rdata, entry("DC1", 0x20, false)...)
	rdata = append(rdata, entry("LAB", 0x1b, false)...)
	rdata = append(rdata, 0x02, 0x00, 0x5e, 0x00, 0x53, 0x01)
	rdata = append(rdata, make([]byte, 40)...) // the rest of the statistics
	b = binary.BigEndian.AppendUint16(b, uint16(len(rdata)))
	return append(b, rdata...)
}

// testNBNS answers a node status query for "*" as RFC 1002 §4.2.17
// describes it; anything else is ignored.
func testNBNS(req []byte) []byte {
	w := wire{b: req}
	id := w.u16()
	w.bytes(10)
	name := w.bytes(34)
	typ := w.u16()
	if w.err != nil || name[0] != 32 || string(name[1:3]) != "CK" || typ != nbstatType {
		return nil
	}
	return nbstatResponse(id, false)
}

func TestNetBIOSNSCheck(t *testing.T) {
	node := loopbackUDPPeer(t, testNBNS)
	pointer := loopbackUDPPeer(t, func(req []byte) []byte { return nbstatResponse(binary.BigEndian.Uint16(req), true) })
	silent := loopbackUDPPeer(t, func([]byte) []byte { return nil })
	junk := loopbackUDPPeer(t, func([]byte) []byte { return garbage })
	huge := loopbackUDPPeer(t, func([]byte) []byte { return hugeReply })
	echo := loopbackUDPPeer(t, func(req []byte) []byte { return req })
	short := loopbackUDPPeer(t, func(req []byte) []byte { return nbstatResponse(binary.BigEndian.Uint16(req), false)[:70] })
	names := "DC1<00>, LAB<00>*, DC1<20>, LAB<1b>"

	runExchangeCases(t, "netbios-ns", []exchangeCase{
		{name: "node status", port: node, want: probe.OutcomeOK, details: map[string]string{"netbios_names": names, "mac": "02:00:5e:00:53:01"}},
		{name: "compressed name", port: pointer, want: probe.OutcomeOK, details: map[string]string{"netbios_names": names}},
		{name: "expected name", port: node, raw: map[string]any{"name": "dc1"}, want: probe.OutcomeOK},
		{name: "name missing", port: node, raw: map[string]any{"name": "FS1"}, want: probe.OutcomeProtocolError, reason: "does not have the name FS1"},
		{name: "closed port", port: loopbackClosedUDPPort(t), want: probe.OutcomeRefused},
		{name: "silence", port: silent, timeout: shortWait, want: probe.OutcomeNoResponse, reason: "open or filtered"},
		{name: "garbage", port: junk, want: probe.OutcomeProtocolError, reason: "does not match the request's"},
		{name: "huge reply", port: huge, want: probe.OutcomeProtocolError, reason: "does not match the request's"},
		{name: "echoed request", port: echo, want: probe.OutcomeProtocolError, reason: "a request, not a response"},
		{name: "truncated", port: short, want: probe.OutcomeProtocolError, reason: "NetBIOS answer"},
	})
	if _, err := Decode("netbios-ns", map[string]any{"name": "A-NAME-TOO-LONG-FOR-NETBIOS"}); err == nil {
		t.Error("a 27-character name decoded")
	}
}

func FuzzParseNBSTATReply(f *testing.F) {
	seedCorpus(f, "FuzzParseNBSTATReply")
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := parseNBSTATReply(b, 0x1234)
		if err == nil && len(rep.names) == 0 {
			t.Errorf("accepted %q without names", b)
		}
	})
}
