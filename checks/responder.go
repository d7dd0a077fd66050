package checks

// The flowprobe responder protocol proves that the packets of a flow reach
// the machine that will run a service, before the service is installed:
// `flowprobe listen` runs a Responder on the service's ports, and the tcp
// and udp checks (responder: true, or the udp check's default payload)
// exchange a token with it.
//
// Version 1 is one line each way, ASCII, fields separated by one space:
//
//	client:    FLOWPROBE/1 HELLO <nonce> [<padding>]\n
//	responder: FLOWPROBE/1 ACK <nonce> <name> <proto>/<port> <client address>\n
//
// The nonce is 32 lowercase hex digits, fresh for every check, so an ACK
// proves a live responder answered this very probe (an echo service sends
// the HELLO back, which is not an ACK). name identifies the responder (the
// host name unless configured), proto/port is where the hello arrived and
// client address is the source the responder saw (which reveals NAT). A
// responder that cannot make sense of a line answers over TCP with
//
//	FLOWPROBE/1 ERR <text>\n
//
// and stays silent over UDP. Over UDP an answer is never longer than the
// datagram that asked for it, so a responder cannot amplify a spoofed
// request; the client pads its hello so the full ACK fits, and a shorter
// hello gets the bare "FLOWPROBE/1 ACK <nonce>". Fields after the known ones
// are ignored on both sides, so later versions can add some.

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"strconv"

	"github.com/flowprobe/flowprobe/probe"
)

const (
	responderMagic   = "FLOWPROBE/1"
	responderHelloOp = "HELLO"
	responderAckOp   = "ACK"
	responderErrOp   = "ERR"
	// maxResponderLine bounds a line either side reads.
	maxResponderLine = 256
	// udpHelloSize is the padded size of a UDP hello: room for the
	// longest full ACK (name of 64, an IPv6 address with a zone).
	udpHelloSize = 200
	maxNameLen   = 64
)

// Details keys the responder exchange sets besides probe.DetailResponder.
const (
	DetailResponderName   = "responder_name"    // the responder's identifying name
	DetailResponderSeenAs = "responder_seen_as" // our address as the responder saw it
)

// newNonce returns 32 random hex digits.
func newNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// responderHello is the hello line for nonce, padded to at least size bytes.
func responderHello(nonce string, size int) []byte {
	b := make([]byte, 0, max(size, 64))
	b = append(b, responderMagic+" "+responderHelloOp+" "...)
	b = append(b, nonce...)
	if pad := size - len(b) - 2; pad > 0 {
		b = append(b, ' ')
		for range pad {
			b = append(b, '.')
		}
	}
	return append(b, '\n')
}

// responderAck is what an ACK told us.
type responderAck struct {
	name, port, seenAs string
}

// parseResponderAck parses a responder's answer to nonce. ok is false when
// the line is not an ACK for this nonce; errText is set when it is a
// responder's ERR line.
func parseResponderAck(line []byte, nonce string) (ack responderAck, ok bool, errText string) {
	line = bytes.TrimRight(line, "\r\n")
	f := bytes.Fields(line)
	if len(f) < 2 || string(f[0]) != responderMagic {
		return ack, false, ""
	}
	switch string(f[1]) {
	case responderErrOp:
		_, text, _ := bytes.Cut(line, []byte(responderErrOp+" "))
		return ack, false, string(text)
	case responderAckOp:
	default:
		return ack, false, ""
	}
	if len(f) < 3 || string(f[2]) != nonce {
		return ack, false, ""
	}
	if len(f) > 3 {
		ack.name = string(f[3])
	}
	if len(f) > 4 {
		ack.port = string(f[4])
	}
	if len(f) > 5 {
		ack.seenAs = string(f[5])
	}
	return ack, true, ""
}

// record sets the responder details of an ACK on r.
func (a responderAck) record(r *probe.Result) {
	r.SetDetail(probe.DetailResponder, "true")
	if a.name != "" {
		r.SetDetail(DetailResponderName, a.name)
	}
	if a.seenAs != "" {
		r.SetDetail(DetailResponderSeenAs, a.seenAs)
	}
}

// readUntil reads from c into buf until done(buf[:n]) holds, buf is full,
// or a read fails. It returns the bytes read and the error that stopped it
// (nil when done or full).
func readUntil(c io.Reader, buf []byte, done func([]byte) bool) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := c.Read(buf[n:])
		n += m
		if done(buf[:n]) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			// A reader that makes no progress; count it as the end.
			return n, io.ErrNoProgress
		}
	}
	return n, nil
}

func hasNewline(b []byte) bool { return bytes.IndexByte(b, '\n') >= 0 }

// notResponder is the error for an answer that is not the responder's.
func notResponder(got []byte, cause error) error {
	if cause != nil {
		return Fail(probe.OutcomeProtocolError, "reached something other than the flowprobe responder: %w", cause)
	}
	return Fail(probe.OutcomeProtocolError, "reached something other than the flowprobe responder: it answered %s", quoteBytes(got, 64))
}

// exchangeToken runs the client side of the protocol over a stream
// connection whose deadline is already set, and records the ACK in r.
func exchangeToken(c net.Conn, r *probe.Result) error {
	nonce := newNonce()
	if _, err := c.Write(responderHello(nonce, 0)); err != nil {
		return fmt.Errorf("send hello: %w", err)
	}
	var buf [maxResponderLine]byte
	n, err := readUntil(c, buf[:], hasNewline)
	got := buf[:n]
	if err != nil && !isEOF(err) {
		if n == 0 {
			return fmt.Errorf("read the responder's answer: %w", err)
		}
		return notResponder(got, nil)
	}
	if n == 0 {
		return notResponder(nil, fmt.Errorf("it closed the connection without a word: %w", err))
	}
	ack, ok, errText := parseResponderAck(got, nonce)
	if errText != "" {
		return Fail(probe.OutcomeProtocolError, "the flowprobe responder refused the hello: %s", quoteBytes([]byte(errText), 64))
	}
	if !ok {
		return notResponder(got, nil)
	}
	ack.record(r)
	return nil
}

// quoteBytes quotes at most limit bytes of b for a message.
func quoteBytes(b []byte, limit int) string {
	if len(b) > limit {
		return strconv.Quote(string(b[:limit])) + "..."
	}
	return strconv.Quote(string(b))
}

// maybeHello reports whether b can be the start of a hello line.
func maybeHello(b []byte) bool {
	const prefix = responderMagic + " " + responderHelloOp + " "
	k := min(len(b), len(prefix))
	return string(b[:k]) == prefix[:k]
}

// parseHello returns the nonce of a valid hello line.
func parseHello(line []byte) (string, bool) {
	f := bytes.Fields(bytes.TrimRight(line, "\r\n"))
	if len(f) < 3 || string(f[0]) != responderMagic || string(f[1]) != responderHelloOp {
		return "", false
	}
	nonce := f[2]
	if len(nonce) < 16 || len(nonce) > 64 {
		return "", false
	}
	for _, ch := range nonce {
		if !('0' <= ch && ch <= '9' || 'a' <= ch && ch <= 'f') {
			return "", false
		}
	}
	return string(nonce), true
}

// sanitizeName keeps what may go into one field of an answer.
func sanitizeName(s string) string {
	b := make([]byte, 0, min(len(s), maxNameLen))
	for i := 0; i < len(s) && len(b) < maxNameLen; i++ {
		ch := s[i]
		if 'a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9' || ch == '.' || ch == '-' || ch == '_' {
			b = append(b, ch)
		}
	}
	if len(b) == 0 {
		return "flowprobe"
	}
	return string(b)
}
