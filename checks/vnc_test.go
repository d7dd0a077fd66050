package checks

import (
	"bytes"
	"testing"

	"github.com/flowprobe/flowprobe/probe"
)

func TestVNC(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opts    map[string]any
		port    int
		want    probe.Outcome
		reason  string
		version string
	}{
		{"3.8", nil, talkPeer(t, 0, []byte("RFB 003.008\n")), probe.OutcomeOK, "", "3.8"},
		{"3.3 and more", nil, talkPeer(t, 0, []byte("RFB 003.003\n\x00\x00\x00\x02")), probe.OutcomeOK, "", "3.3"},
		{"Apple's 3.889", nil, talkPeer(t, 0, []byte("RFB 003.889\n")), probe.OutcomeOK, "", "3.889"},
		{"expect matches", map[string]any{"expect": `^3\.8$`}, talkPeer(t, 0, []byte("RFB 003.008\n")), probe.OutcomeOK, "", "3.8"},
		{"expect does not match", map[string]any{"expect": `^3\.8$`}, talkPeer(t, 0, []byte("RFB 003.003\n")),
			probe.OutcomeProtocolError, "version 3.3 does not match expect", "3.3"},
		{"ssh", nil, talkPeer(t, 0, []byte("SSH-2.0-OpenSSH_9.2\r\n")), probe.OutcomeProtocolError,
			`not an RFB protocol version: "SSH-2.0-Open"`, ""},
		{"letters", nil, talkPeer(t, 0, []byte("RFB 00a.008\n")), probe.OutcomeProtocolError,
			`not an RFB protocol version: "RFB 00a.008\n"`, ""},
		{"short", nil, talkClose(t, 0, []byte("RFB 003")), probe.OutcomeProtocolError, `the answer ends after 7 bytes: "RFB 003"`, ""},
		{"closed", nil, talkClose(t, 0, nil), probe.OutcomeProtocolError, "the peer closed the connection without an answer", ""},
		{"huge", nil, talkFlood(t, []byte("RFB ")), probe.OutcomeProtocolError, `not an RFB protocol version: "RFB RFB RFB "`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := appRun(t, "vnc", tc.port, tc.opts)
			talkWant(t, r, tc.want, tc.reason)
			if r.Details[DetailRFBVersion] != tc.version {
				t.Errorf("rfb_version %q, want %q", r.Details[DetailRFBVersion], tc.version)
			}
		})
	}
	talkTransport(t, "vnc", nil, 0)
	if _, err := Decode("vnc", map[string]any{"expect": "("}); err == nil {
		t.Error("a bad expect decoded")
	}
}

// FuzzParseRFBVersion: any 12 bytes parse to a version of digits or fail
// with a protocol_error.
func FuzzParseRFBVersion(f *testing.F) {
	f.Add([]byte("RFB 003.008\n"))
	f.Add([]byte("RFB 004.001\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var b [rfbVersionLen]byte
		if err := readAnswer("vnc", bytes.NewReader(in), b[:]); err != nil {
			if Classify(err, true) != probe.OutcomeProtocolError {
				t.Fatal(err)
			}
			return
		}
		v, err := parseRFBVersion(b)
		if err != nil {
			if Classify(err, true) != probe.OutcomeProtocolError {
				t.Fatal(err)
			}
			return
		}
		if len(v) < 3 || len(v) > 7 {
			t.Fatalf("version %q", v)
		}
	})
}
