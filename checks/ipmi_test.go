package checks

import (
	"testing"

	"github.com/flowprobe/flowprobe/probe"
)

// testBMC answers as a BMC does (IPMI 2.0 §13.6, §22.13; ASF 2.0
// §3.2.4): Get Channel Authentication Capabilities with the capabilities
// of an IPMI 2.0 channel, a presence ping with a pong. A BMC answers the
// command with completion code cc.
func testBMC(cc byte) func(req []byte) []byte {
	return func(req []byte) []byte {
		if len(req) < 12 || req[0] != rmcpVersion {
			return nil
		}
		if req[3] == rmcpClassASF && req[8] == asfPresencePing {
			data := []byte{0, 0, 0x11, 0xbe, 0, 0, 0, 0, 0x81, 0, 0, 0, 0, 0, 0, 0}
			return append([]byte{rmcpVersion, 0, 0xff, rmcpClassASF, 0, 0, 0x11, 0xbe, asfPresencePong, req[9], 0, byte(len(data))}, data...)
		}
		if req[3] != rmcpClassIPMI || len(req) < 14+7 || req[14+5] != ipmiCmdAuthCaps {
			return nil
		}
		seq := req[14+4]
		hdr := []byte{ipmiSWID, (ipmiNetFnApp | 1) << 2}
		body := []byte{ipmiBMCAddr, seq, ipmiCmdAuthCaps, cc, 1, 0x80 | 0x14, 0x04, 0x02, 0, 0, 0, 0}
		msg := append(append(hdr, ipmiChecksum(hdr)), body...)
		msg = append(msg, ipmiChecksum(body))
		return append([]byte{rmcpVersion, 0, 0xff, rmcpClassIPMI, 0, 0, 0, 0, 0, 0, 0, 0, 0, byte(len(msg))}, msg...)
	}
}

func TestIPMICheck(t *testing.T) {
	bmc := loopbackUDPPeer(t, testBMC(0))
	busy := loopbackUDPPeer(t, testBMC(0xc0))
	badSum := loopbackUDPPeer(t, func(req []byte) []byte {
		b := testBMC(0)(req)
		b[len(b)-1]++
		return b
	})
	otherSeq := loopbackUDPPeer(t, func(req []byte) []byte {
		b := testBMC(0)(req)
		if b[3] == rmcpClassASF {
			b[9] ^= 0x20
		}
		return b
	})
	silent := loopbackUDPPeer(t, func([]byte) []byte { return nil })
	junk := loopbackUDPPeer(t, func([]byte) []byte { return garbage })
	huge := loopbackUDPPeer(t, func([]byte) []byte { return hugeReply })
	echo := loopbackUDPPeer(t, func(req []byte) []byte { return req })
	ping := map[string]any{"mode": "ping"}

	runExchangeCases(t, "ipmi", []exchangeCase{
		{name: "capabilities", port: bmc, want: probe.OutcomeOK, details: map[string]string{"ipmi_v2": "true"}},
		{name: "presence ping", port: bmc, raw: ping, want: probe.OutcomeOK, details: map[string]string{"ipmi_supported": "true"}},
		{name: "completion code", port: busy, want: probe.OutcomeProtocolError, reason: "IPMI completion code 0xc0"},
		{name: "bad checksum", port: badSum, want: probe.OutcomeProtocolError, reason: "checksum wrong"},
		{name: "pong for another ping", port: otherSeq, raw: ping, want: probe.OutcomeProtocolError, reason: "does not match the ping's"},
		{name: "closed port", port: loopbackClosedUDPPort(t), want: probe.OutcomeRefused},
		{name: "silence", port: silent, timeout: shortWait, want: probe.OutcomeNoResponse, reason: "open or filtered"},
		{name: "garbage", port: junk, want: probe.OutcomeProtocolError, reason: "not an RMCP message"},
		{name: "huge reply", port: huge, want: probe.OutcomeProtocolError, reason: "not an RMCP message"},
		{name: "echoed request", port: echo, want: probe.OutcomeProtocolError, reason: "not the capabilities response"},
		{name: "echoed ping", port: echo, raw: ping, want: probe.OutcomeProtocolError, reason: "is not a presence pong"},
	})
	if _, err := Decode("ipmi", map[string]any{"mode": "rmcp+"}); err == nil {
		t.Error("an unknown mode decoded")
	}
}

func FuzzParseIPMIReply(f *testing.F) {
	seedCorpus(f, "FuzzParseIPMIReply")
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, mode := range []string{ipmiCapabilities, ipmiPing} {
			if _, err := parseIPMIReply(b, mode, 5); err == nil && len(b) < 12 {
				t.Errorf("%s: accepted a %d-byte reply", mode, len(b))
			}
		}
	})
}
