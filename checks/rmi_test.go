package checks

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"testing"

	"github.com/flowprobe/flowprobe/probe"
)

// rmiAck is a ProtocolAck naming host and port, as a JRMP server writes it
// (writeByte, writeUTF, writeInt).
func rmiAck(host string, port uint32) []byte {
	b := []byte{rmiProtocolAck, byte(len(host) >> 8), byte(len(host))}
	b = append(b, host...)
	return binary.BigEndian.AppendUint32(b, port)
}

// rmiServer is a JRMP server's first step: it reads the client's header
// and, when it is one, acknowledges with the client's address.
func rmiServer(t *testing.T) int {
	return appTCPPeer(t, func(c net.Conn) {
		var h [7]byte
		if _, err := io.ReadFull(c, h[:]); err != nil || string(h[:4]) != "JRMI" ||
			binary.BigEndian.Uint16(h[4:]) != 2 || h[6] != 0x4b {
			return
		}
		a := c.RemoteAddr().(*net.TCPAddr)
		_, _ = c.Write(rmiAck(a.IP.String(), uint32(a.Port)))
		appSilent(c)
	})
}

func TestRMI(t *testing.T) {
	r := appRun(t, "rmi", rmiServer(t), nil)
	talkWant(t, r, probe.OutcomeOK, "")
	if host, _, err := net.SplitHostPort(r.Details[DetailRMISeenAs]); err != nil || host != "127.0.0.1" {
		t.Errorf("rmi_seen_as %q", r.Details[DetailRMISeenAs])
	}
	for _, tc := range []struct {
		name   string
		port   int
		want   probe.Outcome
		reason string
		seen   string
	}{
		{"IPv6 endpoint", talkPeer(t, 7, rmiAck("2001:db8::1", 50123)), probe.OutcomeOK, "", "[2001:db8::1]:50123"},
		{"not supported", talkPeer(t, 7, []byte{rmiProtocolNotSupported}), probe.OutcomeProtocolError,
			"the server does not support the stream protocol", ""},
		{"http", talkPeer(t, 7, []byte("HTTP/1.1 400 Bad Request\r\n\r\n")), probe.OutcomeProtocolError, "not a JRMP acknowledgement: 0x48", ""},
		{"long host", talkPeer(t, 7, []byte{rmiProtocolAck, 0xff, 0xff}), probe.OutcomeProtocolError,
			"a host name of 65535 bytes in the acknowledgement", ""},
		{"control characters", talkPeer(t, 7, rmiAck("a\x1bb", 1)), probe.OutcomeProtocolError,
			`a host name that is not printable: "a\x1bb"`, ""},
		{"port out of range", talkPeer(t, 7, rmiAck("h", 70000)), probe.OutcomeProtocolError, "port 70000 in the acknowledgement", ""},
		{"truncated", talkClose(t, 7, rmiAck("example.org", 1)[:8]), probe.OutcomeProtocolError,
			`the answer ends after 5 bytes: "examp"`, ""},
		{"closed", talkClose(t, 7, nil), probe.OutcomeProtocolError, "the peer closed the connection without an answer", ""},
		{"huge", talkFlood(t, []byte{rmiProtocolAck, 0, 250}), probe.OutcomeProtocolError, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := appRun(t, "rmi", tc.port, nil)
			talkWant(t, r, tc.want, tc.reason)
			if r.Details[DetailRMISeenAs] != tc.seen {
				t.Errorf("rmi_seen_as %q, want %q", r.Details[DetailRMISeenAs], tc.seen)
			}
		})
	}
	talkTransport(t, "rmi", nil, len(rmiHandshake))
}

// FuzzReadRMIAck: whatever a server answers, the check reads an endpoint or
// fails with a protocol_error.
func FuzzReadRMIAck(f *testing.F) {
	f.Add(rmiAck("192.0.2.7", 40000))
	f.Add([]byte{rmiProtocolNotSupported})
	f.Fuzz(func(t *testing.T, in []byte) {
		seen, err := readRMIAck(bytes.NewReader(in))
		if err != nil {
			if Classify(err, true) != probe.OutcomeProtocolError {
				t.Fatal(err)
			}
			return
		}
		if len(seen) > rmiMaxHost+8 {
			t.Fatalf("endpoint %q", seen)
		}
	})
}
