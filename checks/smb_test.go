package checks

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"slices"
	"testing"

	"github.com/flowprobe/flowprobe/probe"
)

// smbResponse is a NEGOTIATE response as [MS-SMB2] 2.2.4 lays it out,
// without the NetBIOS header.
func smbResponse(status uint32, secMode, dialect uint16) []byte {
	le := binary.LittleEndian
	m := make([]byte, smbHeaderLen+64)
	copy(m, "\xfeSMB")
	le.PutUint16(m[4:], smbHeaderLen)
	le.PutUint32(m[8:], status)
	le.PutUint32(m[16:], 1) // SMB2_FLAGS_SERVER_TO_REDIR
	b := m[smbHeaderLen:]
	le.PutUint16(b, 65)
	le.PutUint16(b[2:], secMode)
	le.PutUint16(b[4:], dialect)
	return m
}

// smbReadRequest reads a NEGOTIATE request the way a server does and
// reports whether it is one: SMB2, command 0, the dialects offered and, as
// 3.1.1 demands, exactly a preauth integrity context.
func smbReadRequest(c io.Reader) bool {
	le := binary.LittleEndian
	var h [4]byte
	if _, err := io.ReadFull(c, h[:]); err != nil || h[0] != 0 {
		return false
	}
	m := make([]byte, int(h[1])<<16|int(h[2])<<8|int(h[3]))
	if _, err := io.ReadFull(c, m); err != nil || len(m) < smbHeaderLen+36 {
		return false
	}
	b := m[smbHeaderLen:]
	n := int(le.Uint16(b[2:]))
	if string(m[:4]) != "\xfeSMB" || le.Uint16(m[12:]) != 0 || le.Uint16(b) != 36 || len(b) < 36+2*n {
		return false
	}
	var dialects []uint16
	for i := range n {
		dialects = append(dialects, le.Uint16(b[36+2*i:]))
	}
	off := int(le.Uint32(b[28:]))
	if !slices.Equal(dialects, []uint16{0x0202, 0x0210, 0x0300, 0x0302, 0x0311}) ||
		le.Uint16(b[32:]) != 1 || off%8 != 0 || off+8 > len(m) {
		return false
	}
	ctx := m[off:]
	return le.Uint16(ctx) == 1 && int(le.Uint16(ctx[2:])) == len(ctx)-8 && le.Uint16(ctx[8:]) == 1
}

// smbPeer answers a valid NEGOTIATE request with reply, NetBIOS-framed,
// and a wrong one with nothing.
func smbPeer(t *testing.T, reply []byte) int {
	return appTCPPeer(t, func(c net.Conn) {
		if !smbReadRequest(c) {
			return
		}
		_, _ = c.Write(append(netBIOSLength(len(reply)), reply...))
		appSilent(c)
	})
}

// smbRequestLen is the length of the NEGOTIATE request with its header.
var smbRequestLen = len(smbNegotiateRequest())

func TestSMB(t *testing.T) {
	for _, tc := range []struct {
		name             string
		port             int
		want             probe.Outcome
		reason           string
		dialect, signing string
	}{
		{"3.1.1, signing required", smbPeer(t, smbResponse(0, 3, 0x0311)), probe.OutcomeOK, "", "3.1.1", "required"},
		{"2.1, signing enabled", smbPeer(t, smbResponse(0, 1, 0x0210)), probe.OutcomeOK, "", "2.1.0", "enabled"},
		{"SMB1 only", smbPeer(t, []byte("\xffSMBr\x00\x00\x00\x00\x88\x01\xc8")), probe.OutcomeProtocolError, "the server speaks SMB1 only", "", ""},
		{"error status", smbPeer(t, smbResponse(0xc0000022, 1, 0)), probe.OutcomeProtocolError, "NEGOTIATE failed with status 0xc0000022", "", ""},
		{"dialect not offered", smbPeer(t, smbResponse(0, 1, 0x02ff)), probe.OutcomeProtocolError, "the server chose dialect 0x02ff, which was not offered", "", ""},
		{"short", smbPeer(t, smbResponse(0, 1, 0x0311)[:70]), probe.OutcomeProtocolError, "a response of 70 bytes, too short for NEGOTIATE", "", ""},
		{"not SMB", smbPeer(t, []byte("hello there")), probe.OutcomeProtocolError, `not SMB: "hello there"`, "", ""},
		{"http", talkPeer(t, 0, []byte("HTTP/1.1 400 Bad Request\r\n\r\n")), probe.OutcomeProtocolError, `not an SMB session message: "HTTP"`, "", ""},
		{"huge length", talkPeer(t, 0, []byte{0, 0xff, 0xff, 0xff}), probe.OutcomeProtocolError, "a message of 16777215 bytes, over the 65536 bytes a negotiate response needs", "", ""},
		{"truncated", talkClose(t, smbRequestLen, []byte{0, 0, 0, 200, 0xfe, 'S'}), probe.OutcomeProtocolError, `the answer ends after 2 bytes: "\xfeS"`, "", ""},
		{"closed", talkClose(t, smbRequestLen, nil), probe.OutcomeProtocolError, "the peer closed the connection without an answer", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := appRun(t, "smb", tc.port, nil)
			talkWant(t, r, tc.want, tc.reason)
			if r.Details[DetailSMBDialect] != tc.dialect || r.Details[DetailSMBSigning] != tc.signing {
				t.Errorf("details %v", r.Details)
			}
		})
	}
	talkWant(t, appRun(t, "smb", talkFlood(t, []byte{0}), nil), probe.OutcomeProtocolError, "")
	talkTransport(t, "smb", nil, smbRequestLen)
}

// On port 139 a NetBIOS session comes first; the test peer cannot have
// that port, so it asks for it with netbios_session: always.
func TestSMBNetBIOSSession(t *testing.T) {
	calledName := netBIOSName("*SMBSERVER", 0x20)
	peer := func(answer []byte) int {
		return appTCPPeer(t, func(c net.Conn) {
			req := make([]byte, 4+68)
			if _, err := io.ReadFull(c, req); err != nil || req[0] != 0x81 || !bytes.Equal(req[4:38], calledName) {
				return
			}
			_, _ = c.Write(answer)
			if answer[0] == 0x82 && smbReadRequest(c) {
				reply := smbResponse(0, 1, 0x0302)
				_, _ = c.Write(append(netBIOSLength(len(reply)), reply...))
			}
			appSilent(c)
		})
	}
	always := map[string]any{"netbios_session": "always"}
	r := appRun(t, "smb", peer([]byte{0x82, 0, 0, 0}), always)
	talkWant(t, r, probe.OutcomeOK, "")
	if r.Details[DetailSMBDialect] != "3.0.2" {
		t.Errorf("details %v", r.Details)
	}
	talkWant(t, appRun(t, "smb", peer([]byte{0x83, 0, 0, 1, 0x82}), always),
		probe.OutcomeProtocolError, "NetBIOS session refused: called name not present")
	talkWant(t, appRun(t, "smb", peer([]byte{0x85, 0, 0, 0}), always),
		probe.OutcomeProtocolError, `not a NetBIOS session response: "\x85\x00\x00\x00"`)
	// Without a session request, a port-139 server hears a message it
	// does not expect; with one, a direct-TCP server does.
	if _, err := Decode("smb", map[string]any{"netbios_session": "sometimes"}); err == nil {
		t.Error("netbios_session: sometimes decoded")
	}
	if got := netBIOSName("FLOWPROBE", 0); len(got) != 34 || string(got[1:5]) != "EGEM" {
		t.Errorf("encoded name %q", got)
	}
}

// FuzzParseSMBNegotiate: whatever a server answers, reading and parsing it
// ends in a negotiated dialect that was offered, or a protocol_error.
func FuzzParseSMBNegotiate(f *testing.F) {
	for _, m := range [][]byte{smbResponse(0, 3, 0x0311), smbResponse(0xc0000022, 0, 0), []byte("\xffSMBr")} {
		f.Add(append(netBIOSLength(len(m)), m...))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		msg, err := smbReadMessage(bytes.NewReader(in))
		var n smbNegotiate
		if err == nil {
			n, err = parseSMBNegotiate(msg)
		}
		if err != nil {
			if o := Classify(err, true); o != probe.OutcomeProtocolError {
				t.Fatalf("error %v classified %v", err, o)
			}
			return
		}
		if !slices.Contains(smbDialects, n.dialect) {
			t.Fatalf("dialect %04x", n.dialect)
		}
	})
}
