package checks

import (
	"bytes"
	"io"
	"net"
	"testing"

	"github.com/flowprobe/flowprobe/probe"
)

// Peers and assertions shared by the tests of the banner, smb, rdp, vnc
// and rmi checks.

// talkPeer reads the client's first request of reqLen bytes (none when 0),
// answers with reply and reads until the client goes away.
func talkPeer(t *testing.T, reqLen int, reply []byte) int {
	t.Helper()
	return appTCPPeer(t, func(c net.Conn) {
		if reqLen > 0 {
			if _, err := io.ReadFull(c, make([]byte, reqLen)); err != nil {
				return
			}
		}
		if _, err := c.Write(reply); err != nil {
			return
		}
		appSilent(c)
	})
}

// talkClose reads the client's first request of reqLen bytes, answers
// with reply and closes the connection.
func talkClose(t *testing.T, reqLen int, reply []byte) int {
	t.Helper()
	return appTCPPeer(t, func(c net.Conn) {
		if reqLen > 0 {
			if _, err := io.ReadFull(c, make([]byte, reqLen)); err != nil {
				return
			}
		}
		_, _ = c.Write(reply)
	})
}

// talkReset reads the client's first request of reqLen bytes (none when
// 0), then resets the connection.
func talkReset(t *testing.T, reqLen int) int {
	t.Helper()
	return appTCPPeer(t, func(c net.Conn) {
		if reqLen > 0 {
			if _, err := io.ReadFull(c, make([]byte, reqLen)); err != nil {
				return
			}
		}
		_ = c.(*net.TCPConn).SetLinger(0)
	})
}

// talkFlood sends 1 MiB of chunk repeated, whatever the client says.
func talkFlood(t *testing.T, chunk []byte) int {
	t.Helper()
	return appTCPPeer(t, func(c net.Conn) {
		go appSilent(c)
		big := bytes.Repeat(chunk, (64<<10)/len(chunk)+1)
		for range 16 {
			if _, err := c.Write(big); err != nil {
				return
			}
		}
	})
}

// talkTransport runs kind against a closed port, a silent peer and a peer
// that resets (after reading a request of reqLen bytes, or at once): the
// usual transport outcomes, decided by Classify alone.
func talkTransport(t *testing.T, kind string, raw map[string]any, reqLen int) {
	t.Helper()
	appWant(t, appRun(t, kind, appClosedTCPPort(t), raw), probe.OutcomeRefused)
	// A silent service fails after the connection was made.
	r := appRun(t, kind, appTCPPeer(t, appSilent), raw)
	if r.Outcome == probe.OutcomeOK || !r.Connected || r.Phases[probe.PhaseRequest] == 0 {
		t.Errorf("silent peer: outcome %s (%v), connected %v, request phase %v; want a failure after connect",
			r.Outcome, r.Err, r.Connected, r.Phases[probe.PhaseRequest])
	}
	r = appRun(t, kind, talkReset(t, reqLen), raw)
	talkWant(t, r, probe.OutcomeProtocolError, probe.ReasonResetAfterConnect)
}

// talkWant asserts the outcome and, when reason is not empty, the reason
// detail.
func talkWant(t *testing.T, r probe.Result, want probe.Outcome, reason string) {
	t.Helper()
	appWant(t, r, want)
	if reason != "" && r.Details[probe.DetailReason] != reason {
		t.Errorf("reason %q, want %q (%v)", r.Details[probe.DetailReason], reason, r.Err)
	}
}
