package checks

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/flowprobe/flowprobe/probe"
)

var tcpKind = register(Spec[TCPOptions]{
	Name:      "tcp",
	Transport: probe.TCP,
	Summary:   "TCP connect, optionally sending a string and expecting a banner",
	Defaults:  func() *TCPOptions { return &TCPOptions{} },
	Run:       runTCP,
})

// maxBanner bounds what the tcp check reads when it expects an answer.
const maxBanner = 4096

// DetailBanner is the first line a peer sent, when a check read one.
const DetailBanner = "banner"

// TCPOptions are the options of the tcp check.
type TCPOptions struct {
	ExchangeOptions `yaml:",inline"`
}

// ExchangeOptions say what the tcp and udp checks exchange with the peer
// beyond reaching it.
type ExchangeOptions struct {
	// Send is written to the peer (tcp: once connected, verbatim; udp: as
	// the datagram, by default the responder's hello). Use YAML escapes
	// such as "\r\n".
	Send string `yaml:"send"`
	// Expect (see ExpectOption) is matched against the peer's first
	// bytes, at most 4 KiB.
	ExpectOption `yaml:",inline"`
	// Responder requires the peer to be a flowprobe responder: the check
	// exchanges a token with it.
	Responder bool `yaml:"responder"`
}

// Validate compiles expect and rejects options that exclude each other.
func (o *ExchangeOptions) Validate() error {
	if o.Responder && (o.Send != "" || o.Expect != "") {
		return errors.New("responder: true speaks the responder protocol; it cannot go with send or expect")
	}
	return o.ExpectOption.Validate()
}

// runTCP connects; then, as configured, exchanges the responder token or
// sends a string and matches the answer.
func runTCP(ctx context.Context, t probe.Target, o *TCPOptions, r *probe.Result) error {
	if !o.Responder && o.Send == "" && o.expect == nil {
		// Connect only: nothing blocks on the connection after the
		// dial, so it needs no watcher on ctx.
		conn, err := dial(ctx, &t, "tcp", r)
		if err != nil {
			return err
		}
		_ = conn.Close() // connected is the answer, whatever the close says
		return nil
	}
	conn, done, err := connect(ctx, &t, "tcp", 0, r)
	if err != nil {
		return err
	}
	defer done()

	start := time.Now()
	switch {
	case o.Responder:
		err = exchangeToken(conn, r)
	default:
		err = tcpSendExpect(conn, o, r)
	}
	r.Phases[probe.PhaseRequest] = time.Since(start)
	return err
}

// tcpSendExpect writes o.Send and reads until o.expect matches.
func tcpSendExpect(c interface {
	Read([]byte) (int, error)
	Write([]byte) (int, error)
}, o *TCPOptions, r *probe.Result) error {
	if o.Send != "" {
		if _, err := c.Write([]byte(o.Send)); err != nil {
			return fmt.Errorf("send: %w", err)
		}
	}
	if o.expect == nil {
		return nil
	}
	buf := make([]byte, maxBanner)
	n, err := readUntil(c, buf, o.expect.Match)
	got := buf[:n]
	if n > 0 {
		r.SetDetail(DetailBanner, firstLine(got))
	}
	switch {
	case n > 0 && o.expect.Match(got):
		return nil
	case n == 0 && err != nil && !isEOF(err):
		return fmt.Errorf("read the answer: %w", err)
	case n == 0:
		return Fail(probe.OutcomeProtocolError, "the peer closed the connection without a word; expected %q", o.Expect)
	case err == nil:
		return Fail(probe.OutcomeProtocolError, "no match for %q in the first %d bytes: %s", o.Expect, n, quoteBytes(got, 64))
	}
	return Fail(probe.OutcomeProtocolError, "no match for %q in what the peer sent before %v: %s", o.Expect, err, quoteBytes(got, 64))
}

// firstLine is the first line of b, at most 128 bytes, for a detail.
func firstLine(b []byte) string {
	for i, ch := range b {
		if ch == '\n' || ch == '\r' {
			b = b[:i]
			break
		}
	}
	if len(b) > 128 {
		b = b[:128]
	}
	// Keep terminals and logs safe from whatever the peer sent.
	return strings.Map(func(r rune) rune {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return '?'
		}
		return r
	}, string(b))
}
