package checks

import (
	"context"
	"fmt"
	"time"

	"github.com/flowprobe/flowprobe/probe"
)

var udpKind = register(Spec[UDPOptions]{
	Name:      "udp",
	Transport: probe.UDP,
	Summary:   "UDP datagram on a connected socket: answer, ICMP refusal or silence",
	Defaults:  newUDPOptions,
	Run:       runUDP,
})

// maxDatagram bounds the answer the udp check reads; a longer datagram is
// truncated.
const maxDatagram = 4096

// UDPOptions are the options of the udp check.
type UDPOptions struct {
	ExchangeOptions `yaml:",inline"`
}

func newUDPOptions() *UDPOptions { return &UDPOptions{} }

// runUDP sends one datagram on a connected socket and waits for an
// answer, an ICMP error (which the kernel reports to a connected socket) or
// the deadline. Silence is no_response: the port is open or filtered, and
// nothing proves which.
func runUDP(ctx context.Context, t probe.Target, o *UDPOptions, r *probe.Result) error {
	conn, done, err := connect(ctx, &t, "udp", 0, r)
	if err != nil {
		return err
	}
	defer done()

	var nonce string
	payload := []byte(o.Send)
	if o.Send == "" {
		nonce = newNonce()
		payload = responderHello(nonce, udpHelloSize)
	}
	start := time.Now()
	err = udpExchange(conn, payload, nonce, o, r)
	r.Phases[probe.PhaseRequest] = time.Since(start)
	return err
}

func udpExchange(c interface {
	Read([]byte) (int, error)
	Write([]byte) (int, error)
}, payload []byte, nonce string, o *UDPOptions, r *probe.Result) error {
	if _, err := c.Write(payload); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	buf := make([]byte, maxDatagram)
	n, err := c.Read(buf)
	if err != nil {
		if isTimeout(err) {
			r.SetDetail(probe.DetailReason, "open or filtered")
			return Fail(probe.OutcomeNoResponse, "no answer before the deadline (open or filtered): %w", err)
		}
		return fmt.Errorf("read the answer: %w", err)
	}
	answered(r)
	got := buf[:n]
	isResponder := false
	if nonce != "" {
		if ack, ok, _ := parseResponderAck(got, nonce); ok {
			ack.record(r)
			isResponder = true
		}
	}
	switch {
	case o.Responder && !isResponder:
		return notResponder(got, nil)
	case o.expect != nil && !o.expect.Match(got):
		return Fail(probe.OutcomeProtocolError, "the answer does not match %q: %s", o.Expect, quoteBytes(got, 64))
	}
	return nil
}
