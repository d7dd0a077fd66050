package checks

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"time"

	"github.com/flowprobe/flowprobe/probe"
)

// https is bound to the tls check rather than http: a handshake proves the
// path and the TLS service without knowing which URL of the appliance
// answers 2xx.
var tlsKind = register(Spec[TLSCheckOptions]{
	Name:      "tls",
	Transport: probe.TCP,
	Summary:   "TLS handshake: version, cipher, certificate validity and expiry",
	Defaults:  newTLSCheckOptions,
	Values:    tlsValues,
	Hints:     []Hint{{App: "https"}},
	Run:       runTLS,

	DefaultPort: 443,
})

// Values of a completed TLS handshake, recorded by every check that makes
// one (tls, http, ldap).
const (
	ValueTLSCertExpiry  = "tls_cert_expiry_timestamp_seconds"  // leaf certificate NotAfter
	ValueTLSChainExpiry = "tls_chain_expiry_timestamp_seconds" // earliest NotAfter in the verified chain
)

var tlsValues = []Value{
	{ValueTLSCertExpiry, "NotAfter of the peer's leaf certificate, as a Unix timestamp."},
	{ValueTLSChainExpiry, "Earliest NotAfter of the certificates in the peer's chain, as a Unix timestamp."},
}

// Details keys of the TLS facts a check records.
const (
	DetailTLSVersion = "tls_version" // e.g. "TLS 1.3"
	DetailTLSCipher  = "tls_cipher"  // e.g. "TLS_AES_128_GCM_SHA256"
	DetailTLSSubject = "tls_subject" // the leaf's subject
	DetailTLSIssuer  = "tls_issuer"  // the leaf's issuer
)

// TLSCheckOptions are the options of the tls check: the shared TLS
// settings, inline (ca_file, cert_file, key_file, server_name,
// insecure_skip_verify, min_version, max_version).
type TLSCheckOptions struct {
	TLSOptions `yaml:",inline"`
}

func newTLSCheckOptions() *TLSCheckOptions { return &TLSCheckOptions{} }

// runTLS connects and runs a TLS handshake, recording the version, the
// cipher and the certificates' expiry; a failed verification is a
// tls_error with a reason.
func runTLS(ctx context.Context, t probe.Target, o *TLSCheckOptions, r *probe.Result) error {
	conn, done, err := connect(ctx, &t, "tcp", 0, r)
	if err != nil {
		return err
	}
	defer done()

	tc := tls.Client(conn, o.Config(t.Host))
	start := time.Now()
	err = tc.HandshakeContext(ctx)
	r.Phases[probe.PhaseTLS] = time.Since(start)
	if err != nil {
		recordTLSFailure(r, err)
		return tlsHandshakeError(err)
	}
	cs := tc.ConnectionState()
	recordTLSState(r, &cs)
	return nil
}

// recordTLSState records the facts of a completed handshake: version,
// cipher, leaf subject and issuer, the leaf's expiry and the earliest
// expiry of the verified chain (of the presented certificates when
// verification was skipped).
func recordTLSState(r *probe.Result, cs *tls.ConnectionState) {
	r.SetDetail(DetailTLSVersion, tls.VersionName(cs.Version))
	r.SetDetail(DetailTLSCipher, tls.CipherSuiteName(cs.CipherSuite))
	chain := cs.PeerCertificates
	if len(cs.VerifiedChains) > 0 {
		chain = cs.VerifiedChains[0]
	}
	recordCerts(r, chain)
}

// recordCerts records the leaf's subject, issuer and expiry and the
// earliest expiry in chain (leaf first).
func recordCerts(r *probe.Result, chain []*x509.Certificate) {
	if len(chain) == 0 {
		return
	}
	leaf := chain[0]
	r.SetDetail(DetailTLSSubject, leaf.Subject.String())
	r.SetDetail(DetailTLSIssuer, leaf.Issuer.String())
	r.SetValue(ValueTLSCertExpiry, float64(leaf.NotAfter.Unix()))
	earliest := leaf.NotAfter
	for _, c := range chain[1:] {
		if c.NotAfter.Before(earliest) {
			earliest = c.NotAfter
		}
	}
	r.SetValue(ValueTLSChainExpiry, float64(earliest.Unix()))
}

// recordTLSFailure records the reason of a failed handshake and, when the
// peer sent certificates before verification failed, their expiry.
func recordTLSFailure(r *probe.Result, err error) {
	var certErr *tls.CertificateVerificationError
	if errors.As(err, &certErr) {
		recordCerts(r, certErr.UnverifiedCertificates)
	}
	if reason := tlsReason(err); reason != "" {
		r.SetDetail(probe.DetailReason, reason)
	}
}

// tlsReason is a short English reason for a TLS failure, "" when err is no
// TLS failure.
func tlsReason(err error) string {
	var (
		certErr    *tls.CertificateVerificationError
		hostErr    x509.HostnameError
		invalidErr x509.CertificateInvalidError
		authErr    x509.UnknownAuthorityError
	)
	switch {
	case errors.As(err, &invalidErr) && invalidErr.Reason == x509.Expired:
		return "certificate expired"
	case errors.As(err, &invalidErr):
		return "certificate invalid: " + invalidErr.Error()
	case errors.As(err, &hostErr):
		return "certificate is not valid for host " + hostErr.Host
	case errors.As(err, &authErr):
		// Self-signed only when the leaf itself is: a chain that ends in
		// an untrusted root is "unknown authority".
		c := authErr.Cert
		if errors.As(err, &certErr) && len(certErr.UnverifiedCertificates) > 0 {
			c = certErr.UnverifiedCertificates[0]
		}
		if c != nil && selfSigned(c) {
			return "self-signed certificate"
		}
		return "certificate signed by unknown authority"
	case errors.As(err, &certErr):
		return "certificate verification failed: " + certErr.Err.Error()
	case isTLSAlert(err):
		var op *net.OpError
		errors.As(err, &op)
		if op.Op == "remote error" {
			return "the peer sent the alert: " + op.Err.Error()
		}
		return "alert sent to the peer: " + op.Err.Error()
	}
	return ""
}

// selfSigned reports a certificate that names itself as issuer and carries
// its own signature (whatever its CA flag says).
func selfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) &&
		c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil
}
