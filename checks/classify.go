package checks

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/flowprobe/flowprobe/probe"
)

// OutcomeError pins the outcome of an error that a check has already
// understood (an LDAP result code 49, an iSCSI status class, a KoD reply...).
// Classify honours it before looking deeper into the chain.
type OutcomeError struct {
	Outcome probe.Outcome
	Err     error

	reason string // of a local_error, see localFail
}

func (e *OutcomeError) Error() string { return e.Err.Error() }
func (e *OutcomeError) Unwrap() error { return e.Err }

// Fail returns an error that Classify maps to outcome o. The message is
// formatted like fmt.Errorf, so %w wraps a cause.
func Fail(o probe.Outcome, format string, args ...any) error {
	return &OutcomeError{Outcome: o, Err: fmt.Errorf(format, args...)}
}

// Classify turns an error chain into exactly one outcome, knowing whether
// the transport had connected (a TCP connection was established, or a UDP
// answer came: probe.Result.Connected). It is the only place that does so;
// checks wrap their errors with %w and call it (through finish) at the end
// of a run.
//
// The order matters: a fault of this machine (no ICMP socket, a source
// address that is not local, no address of the wanted family, an unreadable
// secret) is local_error; then a pinned outcome (Fail) wins; then a name
// that did not resolve; then what the kernel said (RST or ICMP port
// unreachable is refused; ICMP host/net unreachable and admin-prohibited,
// which Linux reports as EHOSTUNREACH/ENETUNREACH, are unreachable); then a
// deadline (a silent drop); then TLS; anything else that answered is a
// protocol error.
//
// The phase rule: path outcomes (timeout, refused, unreachable) describe
// only what happened before the transport connected. After it, a deadline
// is service_timeout, and a reset or any other path error is a
// protocol_error (see classifyReason for the reason it records), so that a
// hung or crashing service never blames the network.
func Classify(err error, connected bool) probe.Outcome {
	o, _ := classifyReason(err, connected)
	return o
}

// classifyReason is Classify with the short reason that explains an
// outcome the error text alone would not: a reset after connect, or which
// local fault. The reason is "" when there is nothing to add.
func classifyReason(err error, connected bool) (probe.Outcome, string) {
	if err == nil {
		return probe.OutcomeOK, ""
	}
	if o, reason := classifyLocal(err); o == probe.OutcomeLocalError {
		return o, reason
	}
	o := classifyPath(err)
	if !connected {
		return o, ""
	}
	if (o == probe.OutcomeRefused || o == probe.OutcomeProtocolError) &&
		(errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)) {
		return probe.OutcomeProtocolError, probe.ReasonResetAfterConnect
	}
	switch o {
	case probe.OutcomeTimeout:
		return probe.OutcomeServiceTimeout, ""
	case probe.OutcomeRefused:
		return probe.OutcomeProtocolError, probe.ReasonRefusedAfterConnect
	case probe.OutcomeUnreachable:
		return probe.OutcomeProtocolError, probe.ReasonLostAfterConnect
	}
	return o, ""
}

// classifyLocal reports the faults of this machine: local_error and its
// reason, or OutcomeOK when err is none of them.
func classifyLocal(err error) (probe.Outcome, string) {
	var (
		oe   *OutcomeError
		sock *ICMPSocketError
	)
	switch {
	case errors.As(err, &oe) && oe.Outcome == probe.OutcomeLocalError:
		return probe.OutcomeLocalError, oe.reason
	case errors.As(err, &sock):
		return probe.OutcomeLocalError, probe.ReasonICMPPermission
	case errors.Is(err, errSecret):
		return probe.OutcomeLocalError, probe.ReasonSecretUnreadable
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		// bind(2) to an address no interface of this machine has; no
		// packet left it.
		return probe.OutcomeLocalError, probe.ReasonSourceNotLocal
	case errors.Is(err, syscall.EAFNOSUPPORT):
		return probe.OutcomeLocalError, probe.ReasonFamilyMismatch
	}
	return probe.OutcomeOK, ""
}

// classifyPath is the outcome of err regardless of the phase.
func classifyPath(err error) probe.Outcome {
	var oe *OutcomeError
	if errors.As(err, &oe) {
		return oe.Outcome
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return probe.OutcomeDNSError
	}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE):
		return probe.OutcomeRefused
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, syscall.EHOSTDOWN), errors.Is(err, syscall.ENETDOWN),
		errors.Is(err, syscall.ENONET):
		return probe.OutcomeUnreachable
	case errors.Is(err, syscall.EACCES) && isNetOp(err):
		// Linux reports an ICMPv6 administratively-prohibited to a
		// connect, send or receive as EACCES.
		return probe.OutcomeUnreachable
	}
	if isTimeout(err) {
		return probe.OutcomeTimeout
	}
	var recErr tls.RecordHeaderError
	if errors.As(err, &recErr) {
		// Something answered, but not with TLS.
		return probe.OutcomeProtocolError
	}
	var (
		certErr    *tls.CertificateVerificationError
		alertErr   tls.AlertError
		hostErr    x509.HostnameError
		invalidErr x509.CertificateInvalidError
		authErr    x509.UnknownAuthorityError
	)
	if errors.As(err, &certErr) || errors.As(err, &alertErr) || errors.As(err, &hostErr) ||
		errors.As(err, &invalidErr) || errors.As(err, &authErr) || isTLSAlert(err) {
		return probe.OutcomeTLSError
	}
	return probe.OutcomeProtocolError
}

// localFail returns a local_error with its reason (a probe.Reason*
// constant); the message is formatted like fmt.Errorf.
func localFail(reason, format string, args ...any) error {
	return &OutcomeError{Outcome: probe.OutcomeLocalError, Err: fmt.Errorf(format, args...), reason: reason}
}

// isNetOp reports an error of a network operation on a socket (dial, read,
// write), as opposed to one of opening a file or a socket.
func isNetOp(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && (op.Op == "dial" || op.Op == "read" || op.Op == "write")
}

// isTimeout reports a deadline or a cancelled context: nothing answered in
// the time the check was given. (A cancellation from outside the run is
// told apart by probe.Run, which marks the result interrupted.)
func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(err, context.Canceled) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isTLSAlert reports a TLS alert over TCP: crypto/tls returns an alert the
// peer sent as a *net.OpError with Op "remote error", and one it sent
// itself as Op "local error"; no other package uses those operation names.
func isTLSAlert(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && (op.Op == "remote error" || op.Op == "local error")
}

// isEOF reports a peer that closed the connection before it said enough.
func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// tlsHandshakeError wraps the error of a TLS handshake for Classify. The
// network failures, the deadline and a peer that does not speak TLS (a
// record header that is not TLS, or a close before the handshake ended)
// keep their own outcome; every other handshake failure (a certificate, an
// alert, a version or cipher the peers could not agree on, which crypto/tls
// reports as plain errors) is a tls_error. The returned error names the
// handshake and wraps err.
func tlsHandshakeError(err error) error {
	var recErr tls.RecordHeaderError
	switch o := classifyPath(err); {
	case errors.As(err, &recErr):
		return fmt.Errorf("TLS handshake: the peer does not speak TLS: %w", err)
	case isEOF(err):
		return Fail(probe.OutcomeProtocolError, "TLS handshake: the peer closed the connection: %w", err)
	case o == probe.OutcomeProtocolError:
		return Fail(probe.OutcomeTLSError, "TLS handshake: %w", err)
	}
	return fmt.Errorf("TLS handshake: %w", err)
}

// finish records err and its outcome in r and returns r. The outcome
// depends on the phase the run reached (r.Connected). A reason the
// classification adds (a reset after connect, a local fault) replaces the
// check's own, which described the symptom.
func finish(r *probe.Result, err error) probe.Result {
	notePeer(r)
	r.Err = err
	o, reason := classifyReason(err, r.Connected)
	r.Outcome = o
	if reason != "" {
		r.SetDetail(probe.DetailReason, reason)
	}
	return *r
}
