package checks

// One request, one reply: the mechanics the protocol-aware kinds that speak
// UDP (slp, ssdp, cldap, kerberos, kpasswd, netbios-ns, rpc, ipmi) share —
// the transport option, the bounded read of one datagram or one framed TCP
// reply, the outcomes of silence and of a hang-up, and a bounded reader for
// the binary replies.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/flowprobe/flowprobe/probe"
)

// maxReply bounds every reply these kinds read: one UDP datagram can be no
// larger, and a framed TCP reply that announces more is refused unread.
const maxReply = 64 << 10

// TransportOption is the transport option of kinds that speak UDP and TCP.
type TransportOption struct {
	// Transport is "udp" (default) or "tcp".
	Transport string `yaml:"transport"`
}

// Validate checks the transport.
func (o *TransportOption) Validate() error {
	switch o.Transport {
	case "udp", "tcp":
		return nil
	}
	return fmt.Errorf("transport %q: want udp or tcp", o.Transport)
}

func (o *TransportOption) transport() string { return o.Transport }

// streamFraming says how a request and its reply travel over TCP: wrap
// frames the request, read reads one reply of at most maxReply bytes.
type streamFraming struct {
	wrap func(req []byte) []byte
	read func(r io.Reader) ([]byte, error)
}

// exchange sends req to port of the target (t.Port when 0) over network
// and returns the reply. Over UDP the socket is connected, so an ICMP port
// unreachable is refused, and silence is no_response (the port is open or
// filtered); the reply is one datagram, and once it came the transport is
// connected. Over TCP, fr frames the request and reads the reply; a peer
// that hangs up before it answered is a protocol_error, a silent one a
// service_timeout.
func exchange(ctx context.Context, t *probe.Target, network string, port int, req []byte, fr streamFraming, r *probe.Result) ([]byte, error) {
	conn, done, err := connect(ctx, t, network, port, r)
	if err != nil {
		return nil, err
	}
	defer done()
	start := time.Now()
	defer func() { r.Phases[probe.PhaseRequest] = time.Since(start) }()

	if network == "udp" {
		if _, err := conn.Write(req); err != nil {
			return nil, fmt.Errorf("send: %w", err)
		}
		buf := make([]byte, maxReply)
		n, err := conn.Read(buf)
		if err != nil {
			if isTimeout(err) {
				r.SetDetail(probe.DetailReason, "open or filtered")
				return nil, Fail(probe.OutcomeNoResponse, "no answer before the deadline (open or filtered): %w", err)
			}
			return nil, fmt.Errorf("read the reply: %w", err)
		}
		answered(r)
		return buf[:n], nil
	}
	if _, err := conn.Write(fr.wrap(req)); err != nil {
		return nil, fmt.Errorf("send: %w", err)
	}
	// Read through a buffer: fewer reads for the small headers, and the
	// first read sees enough of a responder's ERR line to recognise it.
	reply, err := fr.read(bufio.NewReaderSize(conn, 4096))
	if err != nil {
		if isEOF(err) {
			r.SetDetail(probe.DetailReason, "the server closed the connection")
			return nil, Fail(probe.OutcomeProtocolError, "read the reply: the server closed the connection: %w", err)
		}
		if errors.Is(err, errTooLarge) {
			r.SetDetail(probe.DetailReason, errTooLarge.Error())
		}
		return nil, fmt.Errorf("read the reply: %w", err)
	}
	return reply, nil
}

// newXID returns a random transaction ID for a request.
func newXID() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}

// replyError makes err, found in a reply that is not the expected answer,
// a protocol_error whose reason is err's text.
func replyError(r *probe.Result, kind string, err error) error {
	r.SetDetail(probe.DetailReason, err.Error())
	return Fail(probe.OutcomeProtocolError, "%s reply: %w", kind, err)
}

// errTooLarge is a framed TCP reply that announces more than maxReply.
var errTooLarge = fmt.Errorf("the reply announces more than %d bytes", maxReply)

// readLength4 reads a reply framed by a 4-byte big-endian length, as
// Kerberos and kpasswd over TCP are (RFC 4120 §7.2.2, RFC 3244).
func readLength4(rd io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(rd, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxReply {
		return nil, Fail(probe.OutcomeProtocolError, "%w (%d)", errTooLarge, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(rd, b); err != nil {
		return nil, err
	}
	return b, nil
}

// wrapLength4 frames req with its 4-byte big-endian length.
func wrapLength4(req []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(req))), req...) //nolint:gosec // requests are small
}

// errShort is a reply that ends inside a field.
var errShort = errors.New("the reply is truncated")

// wire reads big-endian fields from a reply without ever reading past its
// end: a short reply sets err (errShort) and every later read returns
// zeros, so a parser checks err once, after the fields it needs.
type wire struct {
	b   []byte
	err error
}

func (w *wire) bytes(n int) []byte {
	if w.err != nil || n < 0 || n > len(w.b) {
		w.err = errShort
		return nil
	}
	v := w.b[:n]
	w.b = w.b[n:]
	return v
}

func (w *wire) u8() uint8 {
	if b := w.bytes(1); b != nil {
		return b[0]
	}
	return 0
}

func (w *wire) u16() uint16 {
	if b := w.bytes(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (w *wire) u24() uint32 {
	if b := w.bytes(3); b != nil {
		return uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2])
	}
	return 0
}

func (w *wire) u32() uint32 {
	if b := w.bytes(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

// str16 reads a string preceded by its 2-byte length.
func (w *wire) str16() string { return string(w.bytes(int(w.u16()))) }
