package checks

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"testing"

	"github.com/flowprobe/flowprobe/probe"
)

// rdpConfirm is a Connection Confirm as [MS-RDPBCGR] 2.2.1.2 lays it
// out: TPKT, X.224 CC, and a negotiation block of type typ with value v
// (none when typ is 0).
func rdpConfirm(typ byte, v uint32) []byte {
	cc := []byte{6, 0xd0, 0, 0, 0x12, 0x34, 0}
	if typ != 0 {
		cc[0] += 8
		neg := []byte{typ, 0, 8, 0, 0, 0, 0, 0}
		binary.LittleEndian.PutUint32(neg[4:], v)
		cc = append(cc, neg...)
	}
	return append([]byte{3, 0, 0, byte(4 + len(cc))}, cc...)
}

// rdpPeer reads a Connection Request as a server does (TPKT, X.224 CR,
// RDP_NEG_REQ), reports the requested protocols and answers with reply.
func rdpPeer(t *testing.T, requested chan<- uint32, reply []byte) int {
	return appTCPPeer(t, func(c net.Conn) {
		req := make([]byte, 19)
		if _, err := io.ReadFull(c, req); err != nil || req[0] != 3 ||
			binary.BigEndian.Uint16(req[2:]) != 19 || req[4] != 14 || req[5] != 0xe0 || req[11] != 1 {
			return
		}
		if requested != nil {
			requested <- binary.LittleEndian.Uint32(req[15:])
		}
		_, _ = c.Write(reply)
		appSilent(c)
	})
}

func TestRDP(t *testing.T) {
	for _, tc := range []struct {
		name     string
		opts     map[string]any
		reply    []byte
		want     probe.Outcome
		reason   string
		protocol string
	}{
		{"credssp", nil, rdpConfirm(2, 2), probe.OutcomeOK, "", "credssp"},
		{"tls", nil, rdpConfirm(2, 1), probe.OutcomeOK, "", "tls"},
		{"standard security, no negotiation block", nil, rdpConfirm(0, 0), probe.OutcomeOK, "", "rdp"},
		{"NLA required", map[string]any{"protocols": []string{"tls"}}, rdpConfirm(3, 5), probe.OutcomeProtocolError,
			"negotiation failed: the server requires CredSSP (Network Level Authentication)", ""},
		{"no certificate", nil, rdpConfirm(3, 3), probe.OutcomeProtocolError, "negotiation failed: the server has no certificate for TLS", ""},
		{"unknown failure", nil, rdpConfirm(3, 99), probe.OutcomeProtocolError, "negotiation failed with code 99", ""},
		{"not requested", map[string]any{"protocols": []string{"tls"}}, rdpConfirm(2, 2), probe.OutcomeProtocolError,
			"the server selected credssp, which was not requested", "credssp"},
		{"not a confirm", nil, []byte{3, 0, 0, 11, 6, 0xf0, 0, 0, 0, 0, 0}, probe.OutcomeProtocolError,
			`not an X.224 connection confirm: "\x06\xf0\x00\x00\x00\x00\x00"`, ""},
		{"bad block", nil, append(rdpConfirm(2, 1)[:11:11], 2, 0, 9, 0, 1, 0, 0, 0, 0), probe.OutcomeProtocolError, "", ""},
		{"http", nil, []byte("HTTP/1.1 400 Bad Request\r\n\r\n"), probe.OutcomeProtocolError, `not a TPKT packet: "HTTP"`, ""},
		{"huge", nil, []byte{3, 0, 0xff, 0xff}, probe.OutcomeProtocolError, "a TPKT packet of 65535 bytes, not a connection confirm", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := appRun(t, "rdp", rdpPeer(t, nil, tc.reply), tc.opts)
			talkWant(t, r, tc.want, tc.reason)
			if r.Details[DetailRDPProtocol] != tc.protocol {
				t.Errorf("rdp_protocol %q, want %q", r.Details[DetailRDPProtocol], tc.protocol)
			}
		})
	}
	talkWant(t, appRun(t, "rdp", talkClose(t, 19, rdpConfirm(2, 1)[:9]), nil),
		probe.OutcomeProtocolError, `the answer ends after 5 bytes: "\x0e\xd0\x00\x00\x12"`)
	talkWant(t, appRun(t, "rdp", talkClose(t, 19, nil), nil),
		probe.OutcomeProtocolError, "the peer closed the connection without an answer")
	talkWant(t, appRun(t, "rdp", talkFlood(t, []byte{3, 0, 0, 19}), nil), probe.OutcomeProtocolError, "")
	talkTransport(t, "rdp", nil, 19)
}

func TestRDPRequest(t *testing.T) {
	requested := make(chan uint32, 1)
	appWant(t, appRun(t, "rdp", rdpPeer(t, requested, rdpConfirm(0, 0)), map[string]any{"protocols": []string{}}), probe.OutcomeOK)
	if got := <-requested; got != 0 {
		t.Errorf("requested 0x%x with no protocols", got)
	}
	appWant(t, appRun(t, "rdp", rdpPeer(t, requested, rdpConfirm(2, 2)), nil), probe.OutcomeOK)
	if got := <-requested; got != 3 {
		t.Errorf("requested 0x%x by default, want TLS|CredSSP", got)
	}
	if _, err := Decode("rdp", map[string]any{"protocols": []string{"ssl"}}); err == nil {
		t.Error("protocols [ssl] decoded")
	}
	if got := rdpProtocolName(0xa); got != "0xa credssp+credssp_ex" {
		t.Errorf("name of 0xa: %q", got)
	}
}

// FuzzParseRDPConfirm: whatever a server answers, the check reads a
// protocol or fails with a protocol_error.
func FuzzParseRDPConfirm(f *testing.F) {
	f.Add(rdpConfirm(2, 2))
	f.Add(rdpConfirm(3, 5))
	f.Add(rdpConfirm(0, 0))
	f.Fuzz(func(t *testing.T, in []byte) {
		rd := bytes.NewReader(in)
		var h [4]byte
		err := readAnswer("rdp", rd, h[:])
		var n int
		if err == nil {
			n, err = rdpTPKTLength(h)
		}
		if err == nil {
			pdu := make([]byte, n-4)
			if err = readAnswer("rdp", rd, pdu); err == nil {
				_, err = parseRDPConfirm(pdu)
			}
		}
		if err != nil && Classify(err, true) != probe.OutcomeProtocolError {
			t.Fatalf("error %v classified %v", err, Classify(err, true))
		}
	})
}
