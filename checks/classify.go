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
}

func (e *OutcomeError) Error() string { return e.Err.Error() }
func (e *OutcomeError) Unwrap() error { return e.Err }

// Fail returns an error that Classify maps to outcome o. The message is
// formatted like fmt.Errorf, so %w wraps a cause.
func Fail(o probe.Outcome, format string, args ...any) error {
	return &OutcomeError{Outcome: o, Err: fmt.Errorf(format, args...)}
}

// Classify turns an error chain into exactly one outcome. It is the only
// place that does so; checks wrap their errors with %w and call it (through
// finish) at the end of a run.
//
// The order matters: a pinned outcome (Fail) wins; then a name that did not
// resolve; then what the kernel said (RST or ICMP port unreachable is
// refused; ICMP host/net unreachable and admin-prohibited, which Linux
// reports as EHOSTUNREACH/ENETUNREACH, are unreachable); then a deadline
// (a silent drop); then TLS; anything else that answered is a protocol
// error.
func Classify(err error) probe.Outcome {
	if err == nil {
		return probe.OutcomeOK
	}
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

// isTimeout reports a deadline or a cancelled context: nothing answered in
// the time the check was given.
// isNetOp reports an error of a network operation on a socket (dial, read,
// write), as opposed to one of opening a file or a socket.
func isNetOp(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && (op.Op == "dial" || op.Op == "read" || op.Op == "write")
}

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
	switch o := Classify(err); {
	case errors.As(err, &recErr):
		return fmt.Errorf("TLS handshake: the peer does not speak TLS: %w", err)
	case isEOF(err):
		return Fail(probe.OutcomeProtocolError, "TLS handshake: the peer closed the connection: %w", err)
	case o == probe.OutcomeProtocolError:
		return Fail(probe.OutcomeTLSError, "TLS handshake: %w", err)
	}
	return fmt.Errorf("TLS handshake: %w", err)
}

// finish records err and its outcome in r and returns r.
func finish(r *probe.Result, err error) probe.Result {
	r.Err = err
	r.Outcome = Classify(err)
	return *r
}
