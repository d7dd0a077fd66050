package checks

// What the kinds that prove a TCP service by one short exchange share
// (banner, smb, rdp, vnc, rmi): connect, time the request phase, bound
// what is read, and turn a wrong answer into a protocol_error whose reason
// lands in the details.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/flowprobe/flowprobe/probe"
)

// answerError is an answer that does not prove the service. Its reason is
// short English for the reason detail; kind names the check in the error.
type answerError struct {
	kind, reason string
}

func (e *answerError) Error() string { return e.kind + ": " + e.reason }

// badAnswer returns a protocol_error for a wrong answer with the reason
// formatted like fmt.Sprintf.
func badAnswer(kind, format string, args ...any) error {
	return Fail(probe.OutcomeProtocolError, "%w", &answerError{kind: kind, reason: fmt.Sprintf(format, args...)})
}

// limitedConn reads at most a fixed number of bytes from the connection
// and writes to it unbounded.
type limitedConn struct {
	io.Reader
	io.Writer
}

// talkBuffer is the size of the read buffer of talk's connections.
const talkBuffer = 512

// talk connects to t over TCP and runs converse on the connection, whose
// reads stop after limit bytes (io.EOF) and when ctx is done. It times the
// request phase and records the reason of a wrong answer.
func talk(ctx context.Context, t *probe.Target, r *probe.Result, limit int64, converse func(c io.ReadWriter) error) error {
	conn, done, err := connect(ctx, t, "tcp", 0, r)
	if err != nil {
		return err
	}
	defer done()
	start := time.Now()
	// The buffer makes the first read of the connection a large one, so
	// that a flowprobe responder's ERR line is recognised (see peerConn)
	// however few bytes the protocol asks for first.
	err = converse(limitedConn{Reader: io.LimitReader(bufio.NewReaderSize(conn, talkBuffer), limit), Writer: conn})
	r.Phases[probe.PhaseRequest] = time.Since(start)
	var ae *answerError
	if errors.As(err, &ae) {
		r.SetDetail(probe.DetailReason, ae.reason)
	}
	return err
}

// send writes b whole.
func send(kind string, w io.Writer, b []byte) error {
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("%s: send: %w", kind, err)
	}
	return nil
}

// readAnswer fills buf from rd. A peer that closes before buf is full
// sent a wrong answer; other errors (a deadline, a reset) are returned
// wrapped for Classify.
func readAnswer(kind string, rd io.Reader, buf []byte) error {
	n, err := io.ReadFull(rd, buf)
	switch {
	case err == nil:
		return nil
	case isEOF(err) && n == 0:
		return badAnswer(kind, "the peer closed the connection without an answer")
	case isEOF(err):
		return badAnswer(kind, "the answer ends after %d bytes: %s", n, quoteBytes(buf[:n], 32))
	}
	return fmt.Errorf("%s: read the answer: %w", kind, err)
}
