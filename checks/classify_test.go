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
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/probe"
)

// Real error chains, made by doing the thing that fails.

func realRefused(t *testing.T) error {
	t.Helper()
	_, err := net.Dial("tcp4", "127.0.0.1:"+strconv.Itoa(loopbackClosedTCPPort(t)))
	if err == nil {
		t.Fatal("dial to a closed port succeeded")
	}
	return fmt.Errorf("connect: %w", err)
}

func realUDPRefused(t *testing.T) error {
	t.Helper()
	c, err := net.Dial("udp4", "127.0.0.1:"+strconv.Itoa(loopbackClosedUDPPort(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("x")); err != nil {
		return err
	}
	_, err = c.Read(make([]byte, 8))
	return fmt.Errorf("read: %w", err)
}

func realExpiredContext(t *testing.T) error {
	t.Helper()
	ctx, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel()
	var d net.Dialer
	_, err := d.DialContext(ctx, "tcp4", "127.0.0.1:"+strconv.Itoa(loopbackTCPPeer(t, silentServe)))
	return err
}

func realReadDeadline(t *testing.T) error {
	t.Helper()
	c, err := net.Dial("tcp4", "127.0.0.1:"+strconv.Itoa(loopbackTCPPeer(t, silentServe)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
	_, err = c.Read(make([]byte, 8))
	return fmt.Errorf("read banner: %w", err)
}

func realCancelled(t *testing.T) error {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var d net.Dialer
	_, err := d.DialContext(ctx, "tcp4", "127.0.0.1:"+strconv.Itoa(loopbackTCPPeer(t, silentServe)))
	return err
}

// realDNSError resolves through a resolver whose only server is a closed
// loopback port: a real *net.DNSError that wraps a refusal.
func realDNSError(t *testing.T) error {
	t.Helper()
	port := loopbackClosedUDPPort(t)
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp4", "127.0.0.1:"+strconv.Itoa(port))
	}}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := res.LookupNetIP(ctx, "ip4", "missing.example.org")
	if err == nil {
		t.Fatal("lookup through a closed port succeeded")
	}
	return fmt.Errorf("resolve missing.example.org: %w", err)
}

// realTLSError runs a handshake against a loopback server with cfg and the
// client config cc, and returns the client's handshake error.
func realTLSError(t *testing.T, server *tls.Config, cc *tls.Config) error {
	t.Helper()
	port := loopbackTLSPeer(t, server)
	c, err := net.Dial("tcp4", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	err = tls.Client(c, cc).Handshake()
	if err == nil {
		t.Fatal("handshake succeeded")
	}
	return err
}

func realNotTLS(t *testing.T) error {
	t.Helper()
	port := loopbackTCPPeer(t, func(c net.Conn) {
		_, _ = c.Write([]byte("220 mail.example.org ESMTP\r\n"))
		silentServe(c)
	})
	c, err := net.Dial("tcp4", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return tls.Client(c, &tls.Config{ServerName: "lab.example.org"}).Handshake()
}

// syscallErr wraps an errno the way the net package does for a failed
// connect or read.
func syscallErr(op, call string, errno syscall.Errno) error {
	return fmt.Errorf("connect: %w", &net.OpError{Op: op, Net: "tcp", Err: os.NewSyscallError(call, errno)})
}

func TestClassify(t *testing.T) {
	now := time.Now()
	pki := newTLSPKI(t, now.Add(48*time.Hour))
	good := pki.issue(t, "lab.example.org", []string{"lab.example.org"}, now.Add(-time.Hour), now.Add(72*time.Hour), x509.ExtKeyUsageServerAuth)
	expired := pki.issue(t, "lab.example.org", []string{"lab.example.org"}, now.Add(-72*time.Hour), now.Add(-time.Hour), x509.ExtKeyUsageServerAuth)
	roots := x509.NewCertPool()
	roots.AddCert(pki.cert)
	trusting := func(name string) *tls.Config { return &tls.Config{RootCAs: roots, ServerName: name} }
	tls12 := serverConfig(good)
	tls12.MaxVersion = tls.VersionTLS12
	tls13Client := trusting("lab.example.org")
	tls13Client.MinVersion = tls.VersionTLS13

	cases := []struct {
		name string
		err  error
		want probe.Outcome
	}{
		{"nil", nil, probe.OutcomeOK},
		{"TCP connect to a closed port (RST)", realRefused(t), probe.OutcomeRefused},
		{"connected UDP to a closed port (ICMP port unreachable)", realUDPRefused(t), probe.OutcomeRefused},
		{"dial with an expired context", realExpiredContext(t), probe.OutcomeTimeout},
		{"read past the conn deadline (silent drop)", realReadDeadline(t), probe.OutcomeTimeout},
		{"dial with a cancelled context", realCancelled(t), probe.OutcomeTimeout},
		{"bare context.DeadlineExceeded", fmt.Errorf("query: %w", context.DeadlineExceeded), probe.OutcomeTimeout},
		{"name did not resolve", realDNSError(t), probe.OutcomeDNSError},
		{"constructed NXDOMAIN", &net.DNSError{Err: "no such host", Name: "missing.example.org", IsNotFound: true}, probe.OutcomeDNSError},
		// ICMP errors as Linux reports them to a connect (PROTOCOLS.md §0).
		{"ICMP admin-prohibited (EHOSTUNREACH)", syscallErr("dial", "connect", syscall.EHOSTUNREACH), probe.OutcomeUnreachable},
		{"ICMP host unreachable (EHOSTUNREACH)", syscallErr("dial", "connect", syscall.EHOSTUNREACH), probe.OutcomeUnreachable},
		{"ICMP net unreachable (ENETUNREACH)", syscallErr("dial", "connect", syscall.ENETUNREACH), probe.OutcomeUnreachable},
		{"local network down (ENETDOWN)", syscallErr("dial", "connect", syscall.ENETDOWN), probe.OutcomeUnreachable},
		{"ICMP admin-prohibited on connected UDP", syscallErr("read", "recvfrom", syscall.EHOSTUNREACH), probe.OutcomeUnreachable},
		{"ICMPv6 admin-prohibited to a connect (EACCES)", syscallErr("dial", "connect", syscall.EACCES), probe.OutcomeUnreachable},
		{"ICMPv6 admin-prohibited on connected UDP (EACCES)", syscallErr("read", "recvfrom", syscall.EACCES), probe.OutcomeUnreachable},
		{"a file that cannot be read (EACCES) is no network verdict", fmt.Errorf("ca_file: %w", &os.PathError{Op: "open", Path: "/x", Err: syscall.EACCES}), probe.OutcomeProtocolError},
		{"RST after accept (ECONNRESET)", syscallErr("read", "read", syscall.ECONNRESET), probe.OutcomeRefused},
		{"write after RST (EPIPE)", syscallErr("write", "write", syscall.EPIPE), probe.OutcomeRefused},
		{"silent drop (os.ErrDeadlineExceeded)", &net.OpError{Op: "read", Net: "udp", Err: os.ErrDeadlineExceeded}, probe.OutcomeTimeout},
		{"peer closed (io.EOF)", fmt.Errorf("read banner: %w", io.EOF), probe.OutcomeProtocolError},
		{"short answer (io.ErrUnexpectedEOF)", fmt.Errorf("read PDU: %w", io.ErrUnexpectedEOF), probe.OutcomeProtocolError},
		{"anything else", errors.New("unexpected opcode 0x3f"), probe.OutcomeProtocolError},
		{"TLS: expired certificate", realTLSError(t, serverConfig(expired), trusting("lab.example.org")), probe.OutcomeTLSError},
		{"TLS: unknown authority", realTLSError(t, serverConfig(good), &tls.Config{ServerName: "lab.example.org", RootCAs: x509.NewCertPool()}), probe.OutcomeTLSError},
		{"TLS: wrong host", realTLSError(t, serverConfig(good), trusting("other.example.org")), probe.OutcomeTLSError},
		{"TLS: remote alert (version)", realTLSError(t, tls12, tls13Client), probe.OutcomeTLSError},
		{"TLS: peer is not TLS", realNotTLS(t), probe.OutcomeProtocolError},
		{"TLS: QUIC-style AlertError", fmt.Errorf("handshake: %w", tls.AlertError(40)), probe.OutcomeTLSError},
		// A pinned outcome wins over whatever it wraps.
		{"pinned auth_error over a refusal", Fail(probe.OutcomeAuthError, "bind: %w", syscall.ECONNREFUSED), probe.OutcomeAuthError},
		{"pinned no_response over a deadline", Fail(probe.OutcomeNoResponse, "no answer: %w", os.ErrDeadlineExceeded), probe.OutcomeNoResponse},
		{"pinned outcome wrapped again", fmt.Errorf("ldap: %w", Fail(probe.OutcomeAuthError, "invalid credentials")), probe.OutcomeAuthError},
		{"DNS error wins over the refusal it wraps", fmt.Errorf("lookup: %w", &net.DNSError{Err: "connection refused", UnwrapErr: syscall.ECONNREFUSED}), probe.OutcomeDNSError},
		{"joined errors: first decisive cause", errors.Join(errors.New("context"), syscallErr("dial", "connect", syscall.ECONNREFUSED)), probe.OutcomeRefused},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Classify(tc.err, false); got != tc.want {
				t.Errorf("Classify(%v, false) = %s, want %s", tc.err, got, tc.want)
			}
		})
	}
}

// A silent drop and an ICMP rejection must never look alike: the first
// is a timeout, the second unreachable, and only the first passes as
// "blocked" without a doubt.
func TestClassifyDropIsNotReject(t *testing.T) {
	drop := Classify(realReadDeadline(t), false)
	reject := Classify(syscallErr("dial", "connect", syscall.EHOSTUNREACH), false)
	if drop != probe.OutcomeTimeout || reject != probe.OutcomeUnreachable {
		t.Errorf("drop → %s, admin-prohibited → %s; want timeout and unreachable", drop, reject)
	}
}

func TestTLSHandshakeError(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want probe.Outcome
	}{
		{"version mismatch reported as a plain error", errors.New("tls: server selected unsupported protocol version 301"), probe.OutcomeTLSError},
		{"no common cipher", errors.New("tls: no cipher suite supported by both client and server"), probe.OutcomeTLSError},
		{"non-TLS record", tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, probe.OutcomeProtocolError},
		{"peer hung up", io.EOF, probe.OutcomeProtocolError},
		{"deadline", os.ErrDeadlineExceeded, probe.OutcomeTimeout},
		{"reset", syscallErr("read", "read", syscall.ECONNRESET), probe.OutcomeRefused},
		{"certificate", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, probe.OutcomeTLSError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tlsHandshakeError(tc.err)
			if got := Classify(err, false); got != tc.want {
				t.Errorf("outcome %s, want %s (%v)", got, tc.want, err)
			}
			if !errors.Is(err, tc.err) {
				t.Errorf("%v does not wrap %v", err, tc.err)
			}
		})
	}
}

func TestFinishRecordsErrorAndOutcome(t *testing.T) {
	var r probe.Result
	err := syscallErr("dial", "connect", syscall.ECONNREFUSED)
	got := finish(&r, err)
	if got.Outcome != probe.OutcomeRefused || !errors.Is(got.Err, syscall.ECONNREFUSED) || r.Outcome != probe.OutcomeRefused {
		t.Errorf("finish: outcome %s, err %v", got.Outcome, got.Err)
	}
	if got := finish(&r, nil); got.Outcome != probe.OutcomeOK || got.Err != nil {
		t.Errorf("finish(nil): outcome %s, err %v", got.Outcome, got.Err)
	}
}
