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
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET):
		return probe.OutcomeRefused
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, syscall.EHOSTDOWN), errors.Is(err, syscall.ENONET):
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
		errors.As(err, &invalidErr) || errors.As(err, &authErr) {
		return probe.OutcomeTLSError
	}
	return probe.OutcomeProtocolError
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isEOF reports a peer that closed the connection before it said enough.
func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// finish records err and its outcome in r and returns r.
func finish(r *probe.Result, err error) probe.Result {
	r.Err = err
	r.Outcome = Classify(err)
	return *r
}
