package checks

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/probe"
)

// Peers and a case table shared by the tests of the request/reply kinds.

// exchangeCase is one run of a kind against a peer, with the exact outcome
// and (when set) a part of the reason it must report.
type exchangeCase struct {
	name    string
	port    int
	proto   probe.Protocol // the target's protocol; udp when empty
	raw     map[string]any // options; the defaults when nil
	timeout time.Duration  // 5 s when zero
	want    probe.Outcome
	reason  string
	details map[string]string // details that must be present
}

// runExchangeCases runs kind against every case.
func runExchangeCases(t *testing.T, kind string, cases []exchangeCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runKindAt(t, kind, tc.port, tc.proto, tc.raw, tc.timeout)
			if r.Outcome != tc.want {
				t.Fatalf("outcome %s, want %s (err %v, details %v)", r.Outcome, tc.want, r.Err, r.Details)
			}
			if !strings.Contains(r.Details[probe.DetailReason], tc.reason) {
				t.Errorf("reason %q does not say %q", r.Details[probe.DetailReason], tc.reason)
			}
			for k, v := range tc.details {
				if r.Details[k] != v {
					t.Errorf("detail %s = %q, want %q (details %v)", k, r.Details[k], v, r.Details)
				}
			}
		})
	}
}

// runKindAt runs kind against 127.0.0.1:port with raw options.
func runKindAt(t testing.TB, kind string, port int, proto probe.Protocol, raw map[string]any, timeout time.Duration) probe.Result {
	t.Helper()
	opts, err := Decode(kind, raw)
	if err != nil {
		t.Fatalf("Decode(%s, %v): %v", kind, raw, err)
	}
	if proto == "" {
		proto = probe.UDP
	}
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	return Check(t.Context(), probe.Target{Host: "127.0.0.1", Port: port, Protocol: proto, Check: kind, Options: opts, Timeout: timeout})
}

// framedTCPPeer reads requests framed by read and answers each with
// reply(request); a nil answer hangs up.
func framedTCPPeer(t testing.TB, read func(io.Reader) ([]byte, error), reply func(req []byte) []byte) int {
	t.Helper()
	return loopbackTCPPeer(t, func(c net.Conn) {
		for range 4 {
			req, err := read(c)
			if err != nil {
				return
			}
			out := reply(req)
			if out == nil {
				return
			}
			if _, err := c.Write(out); err != nil {
				return
			}
		}
	})
}

// hangUpServe reads a little and hangs up without answering; the unread
// rest of the request makes the close a reset.
func hangUpServe(c net.Conn) {
	var b [16]byte
	_, _ = c.Read(b[:])
}

// garbage is a reply no protocol parses.
var garbage = []byte("HTTP/1.0 400 Bad Request\r\n\r\nnot what you asked for")

// hugeReply is a datagram close to the UDP maximum, all 0xff.
var hugeReply = bytes.Repeat([]byte{0xff}, 65000)

// seedCorpus checks that the fuzz target name has seed inputs under
// testdata/fuzz, where `go test` runs them as regression cases.
func seedCorpus(f *testing.F, name string) {
	f.Helper()
	files, err := os.ReadDir(filepath.Join("testdata", "fuzz", name))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed corpus for %s: %v", name, err)
	}
}

// shortWait is the timeout of cases that end at the deadline (silence).
const shortWait = 100 * time.Millisecond

func TestWireNeverReadsPastTheEnd(t *testing.T) {
	w := wire{b: []byte{1, 2, 3}}
	if w.u16() != 0x0102 || w.err != nil {
		t.Fatal("first field")
	}
	if w.u32() != 0 || !errors.Is(w.err, errShort) {
		t.Fatalf("short read: err %v", w.err)
	}
	if w.u8() != 0 || w.bytes(-1) != nil {
		t.Error("reads after a short read return data")
	}
}

func TestReadLength4Bounds(t *testing.T) {
	big := []byte{0x7f, 0xff, 0xff, 0xff}
	if _, err := readLength4(bytes.NewReader(big)); !errors.Is(err, errTooLarge) || Classify(err, true) != probe.OutcomeProtocolError {
		t.Errorf("huge length: %v", err)
	}
	ok := wrapLength4([]byte("abc"))
	if b, err := readLength4(bytes.NewReader(ok)); err != nil || string(b) != "abc" {
		t.Errorf("framed reply: %q %v", b, err)
	}
	if _, err := readLength4(bytes.NewReader(ok[:5])); !isEOF(err) {
		t.Errorf("short frame: %v", err)
	}
}
