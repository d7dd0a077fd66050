package checks

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/flowprobe/flowprobe/probe"
)

// tinyElementsMessage is an LDAP message (SEQUENCE, message id 1) followed
// by n two-byte NULL elements: the cheapest bytes to send and the dearest
// to decode.
func tinyElementsMessage(n int) []byte {
	body := append([]byte{0x02, 0x01, 0x01}, bytes.Repeat([]byte{0x05, 0x00}, n)...)
	hdr := []byte{0x30, 0x84, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(hdr[2:], uint32(len(body)))
	return append(hdr, body...)
}

// answerWith reads the client's first message, then writes msg.
func answerWith(msg []byte) func(c net.Conn) {
	return func(c net.Conn) {
		if _, err := ber.ReadPacket(bufio.NewReader(c)); err != nil {
			return
		}
		_, _ = c.Write(msg)
		appSilent(c)
	}
}

func TestLDAPRefusesMessagesTooBigOrTooManyElements(t *testing.T) {
	for name, tc := range map[string]struct {
		msg    []byte
		opts   map[string]any
		reason string
	}{
		"bind answer of many tiny elements":     {tinyElementsMessage(ldapMaxElements), nil, "more than 4096 BER elements"},
		"StartTLS answer of many tiny elements": {tinyElementsMessage(ldapMaxElements), map[string]any{"mode": "starttls"}, "more than 4096 BER elements"},
		"bind answer over 64 KiB":               {tinyElementsMessage(40 << 10), nil, "more than the 65536 the check reads"},
		"indefinite length":                     {[]byte{0x30, 0x80, 0x02, 0x01, 0x01, 0x00, 0x00}, nil, "indefinite length"},
		"element past its parent":               {[]byte{0x30, 0x03, 0x02, 0x05, 0x01}, nil, "runs past its parent"},
	} {
		t.Run(name, func(t *testing.T) {
			r := appRun(t, "ldap", appTCPPeer(t, answerWith(tc.msg)), tc.opts)
			appWant(t, r, probe.OutcomeProtocolError)
			if !strings.Contains(r.Error(), tc.reason) {
				t.Errorf("error %q does not say %q", r.Error(), tc.reason)
			}
		})
	}
}

// The heap one check costs against 1 MiB of tiny elements stays small:
// the message is refused by its length before it is read, let alone
// decoded (decoded, it would take about 110 MiB).
func TestLDAPTinyElementFloodCostsLittleHeap(t *testing.T) {
	flood := tinyElementsMessage((1 << 20) / 2)
	port := appTCPPeer(t, answerWith(flood))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r := appRun(t, "ldap", port, nil)
	runtime.ReadMemStats(&after)
	appWant(t, r, probe.OutcomeProtocolError)
	if got := after.TotalAlloc - before.TotalAlloc; got > 16<<20 {
		t.Errorf("one check allocated %d MiB against a flood of tiny elements, want well under 16 MiB", got>>20)
	}
}

// A message within the bounds passes through unchanged, and the next
// message is read after it.
func TestReadLDAPMessageKeepsValidMessages(t *testing.T) {
	bind := ldapMessage(1, ldapResultOp(ldap.ApplicationBindResponse, 0, ""))
	entry := ldapMessage(2, ldapEntryOp("", map[string][]string{"namingContexts": {"dc=example,dc=org"}}))
	r := bytes.NewReader(append(append([]byte{}, bind...), entry...))
	for i, want := range [][]byte{bind, entry} {
		got, err := readLDAPMessage(r)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("message %d: %x %v, want %x", i, got, err, want)
		}
	}
	if _, err := readLDAPMessage(r); !errors.Is(err, io.EOF) {
		t.Errorf("after the last message: %v, want EOF", err)
	}
	if _, err := readLDAPMessage(bytes.NewReader(bind[:len(bind)-1])); err == nil {
		t.Error("a cut message was accepted")
	}
}
