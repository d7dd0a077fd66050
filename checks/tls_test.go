package checks

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/probe"
)

// tlsPKI is a certificate authority made for one test.
type tlsPKI struct {
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	caFile string // PEM of the CA certificate
	dir    string
}

var tlsSerial = big.NewInt(1)

func nextSerial() *big.Int {
	tlsSerial = new(big.Int).Add(tlsSerial, big.NewInt(1))
	return tlsSerial
}

func newTLSPKI(t testing.TB, notAfter time.Time) *tlsPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{CommonName: "flowprobe test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              notAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	dir := t.TempDir()
	p := &tlsPKI{cert: cert, key: key, dir: dir, caFile: filepath.Join(dir, "ca.pem")}
	writePEM(t, p.caFile, "CERTIFICATE", der)
	return p
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// issue makes a certificate for hosts (names or IP literals), signed by the
// CA, or self-signed when p is nil.
func (p *tlsPKI) issue(t testing.TB, cn string, hosts []string, notBefore, notAfter time.Time, usage x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	parent, signer := tmpl, key
	if p != nil {
		parent, signer = p.cert, p.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// files writes cert and key as PEM files and returns their paths.
func (p *tlsPKI) files(t testing.TB, c tls.Certificate, name string) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(p.dir, name+".pem"), filepath.Join(p.dir, name+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", c.Certificate[0])
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, keyFile, "PRIVATE KEY", der)
	return certFile, keyFile
}

// loopbackTLSPeer serves TLS handshakes with cfg and closes after each.
func loopbackTLSPeer(t testing.TB, cfg *tls.Config) int {
	t.Helper()
	return loopbackTCPPeer(t, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Server(c, cfg)
		if tc.Handshake() == nil {
			// Wait for the client to go, so its handshake is complete
			// (TLS 1.3 ends on the server's side later).
			var b [1]byte
			_, _ = tc.Read(b[:])
		}
	})
}

func serverConfig(certs ...tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: certs}
}

func decodeTLS(t testing.TB, raw map[string]any) *TLSCheckOptions {
	t.Helper()
	o, err := Decode("tls", raw)
	if err != nil {
		t.Fatal(err)
	}
	return o.(*TLSCheckOptions)
}

func TestTLSCheck(t *testing.T) {
	now := time.Now()
	pki := newTLSPKI(t, now.Add(48*time.Hour))
	good := pki.issue(t, "lab.example.org", []string{"lab.example.org", "127.0.0.1"}, now.Add(-time.Hour), now.Add(72*time.Hour), x509.ExtKeyUsageServerAuth)
	expired := pki.issue(t, "lab.example.org", []string{"lab.example.org", "127.0.0.1"}, now.Add(-72*time.Hour), now.Add(-24*time.Hour), x509.ExtKeyUsageServerAuth)
	wrongHost := pki.issue(t, "wrong.example.net", []string{"wrong.example.net"}, now.Add(-time.Hour), now.Add(72*time.Hour), x509.ExtKeyUsageServerAuth)
	selfSigned := (*tlsPKI)(nil).issue(t, "lab.example.org", []string{"lab.example.org", "127.0.0.1"}, now.Add(-time.Hour), now.Add(72*time.Hour), x509.ExtKeyUsageServerAuth)
	otherCA := newTLSPKI(t, now.Add(48*time.Hour))
	foreign := otherCA.issue(t, "lab.example.org", []string{"lab.example.org", "127.0.0.1"}, now.Add(-time.Hour), now.Add(72*time.Hour), x509.ExtKeyUsageServerAuth)

	client := pki.issue(t, "client", nil, now.Add(-time.Hour), now.Add(72*time.Hour), x509.ExtKeyUsageClientAuth)
	clientCert, clientKey := pki.files(t, client, "client")
	mtls := serverConfig(good)
	mtls.ClientAuth = tls.RequireAndVerifyClientCert
	mtls.ClientCAs = x509.NewCertPool()
	mtls.ClientCAs.AddCert(pki.cert)
	mtls.MaxVersion = tls.VersionTLS12 // so the refusal arrives within the handshake
	tls12 := serverConfig(good)
	tls12.MaxVersion = tls.VersionTLS12
	tls13 := serverConfig(good)
	tls13.MinVersion = tls.VersionTLS13

	ca := map[string]any{"ca_file": pki.caFile}
	with := func(extra map[string]any) map[string]any {
		m := map[string]any{"ca_file": pki.caFile}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	cases := []struct {
		name        string
		server      *tls.Config
		opts        map[string]any
		want        probe.Outcome
		reason      string // Details[reason], when set
		leafExpiry  time.Time
		chainExpiry time.Time
		version     string
	}{
		{name: "valid for the IP", server: serverConfig(good), opts: ca, want: probe.OutcomeOK,
			leafExpiry: good.Leaf.NotAfter, chainExpiry: pki.cert.NotAfter, version: "TLS 1.3"},
		{name: "valid for server_name", server: serverConfig(good), opts: with(map[string]any{"server_name": "lab.example.org"}), want: probe.OutcomeOK,
			leafExpiry: good.Leaf.NotAfter, chainExpiry: pki.cert.NotAfter},
		{name: "expired", server: serverConfig(expired), opts: ca, want: probe.OutcomeTLSError,
			reason: "certificate expired", leafExpiry: expired.Leaf.NotAfter, chainExpiry: expired.Leaf.NotAfter},
		{name: "wrong host", server: serverConfig(wrongHost), opts: with(map[string]any{"server_name": "lab.example.org"}), want: probe.OutcomeTLSError,
			reason: "certificate is not valid for host lab.example.org", leafExpiry: wrongHost.Leaf.NotAfter},
		{name: "self-signed", server: serverConfig(selfSigned), opts: ca, want: probe.OutcomeTLSError,
			reason: "self-signed certificate", leafExpiry: selfSigned.Leaf.NotAfter},
		{name: "unknown CA", server: serverConfig(foreign), opts: ca, want: probe.OutcomeTLSError,
			reason: "certificate signed by unknown authority", leafExpiry: foreign.Leaf.NotAfter},
		{name: "system roots do not know the test CA", server: serverConfig(good), opts: nil, want: probe.OutcomeTLSError,
			reason: "certificate signed by unknown authority"},
		{name: "insecure_skip_verify accepts self-signed", server: serverConfig(selfSigned), opts: map[string]any{"insecure_skip_verify": true}, want: probe.OutcomeOK,
			leafExpiry: selfSigned.Leaf.NotAfter, chainExpiry: selfSigned.Leaf.NotAfter},
		{name: "min_version above the server's", server: tls12, opts: with(map[string]any{"min_version": "TLS13"}), want: probe.OutcomeTLSError,
			reason: "the peer sent the alert: tls: protocol version not supported"},
		{name: "TLS 1.2 server", server: tls12, opts: ca, want: probe.OutcomeOK, version: "TLS 1.2",
			leafExpiry: good.Leaf.NotAfter, chainExpiry: pki.cert.NotAfter},
		{name: "max_version caps a 1.2/1.3 server at 1.2", server: serverConfig(good), opts: with(map[string]any{"max_version": "TLS12"}), want: probe.OutcomeOK,
			version: "TLS 1.2", leafExpiry: good.Leaf.NotAfter},
		{name: "max_version below a 1.3-only server's", server: tls13, opts: with(map[string]any{"max_version": "tls12"}), want: probe.OutcomeTLSError,
			reason: "the peer sent the alert: tls: protocol version not supported"},
		{name: "min and max version pin 1.3", server: serverConfig(good), opts: with(map[string]any{"min_version": "TLS13", "max_version": "TLS13"}), want: probe.OutcomeOK,
			version: "TLS 1.3"},
		{name: "client certificate required, none given", server: mtls, opts: ca, want: probe.OutcomeTLSError,
			reason: "the peer sent the alert: tls: handshake failure"},
		{name: "client certificate given", server: mtls, opts: with(map[string]any{"cert_file": clientCert, "key_file": clientKey}), want: probe.OutcomeOK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			port := loopbackTLSPeer(t, tc.server)
			var opts any
			if tc.opts != nil {
				opts = decodeTLS(t, tc.opts)
			}
			r := probe.Run(t.Context(), tlsKind.Checker, probe.Target{Host: "127.0.0.1", Port: port, Timeout: 10 * time.Second, Options: opts})
			if r.Outcome != tc.want {
				t.Fatalf("outcome %s, want %s (err %v)", r.Outcome, tc.want, r.Err)
			}
			if tc.reason != "" && r.Details[probe.DetailReason] != tc.reason {
				t.Errorf("reason %q, want %q", r.Details[probe.DetailReason], tc.reason)
			}
			if !tc.leafExpiry.IsZero() && r.Values[ValueTLSCertExpiry] != float64(tc.leafExpiry.Unix()) {
				t.Errorf("leaf expiry %v, want %v", r.Values[ValueTLSCertExpiry], tc.leafExpiry.Unix())
			}
			if !tc.chainExpiry.IsZero() && r.Values[ValueTLSChainExpiry] != float64(tc.chainExpiry.Unix()) {
				t.Errorf("chain expiry %v, want %v", r.Values[ValueTLSChainExpiry], tc.chainExpiry.Unix())
			}
			if tc.version != "" && r.Details[DetailTLSVersion] != tc.version {
				t.Errorf("version %q, want %q", r.Details[DetailTLSVersion], tc.version)
			}
			if tc.want == probe.OutcomeOK {
				if r.Details[DetailTLSCipher] == "" || r.Phases[probe.PhaseTLS] <= 0 || r.Phases[probe.PhaseConnect] <= 0 {
					t.Errorf("cipher %q, phases %v", r.Details[DetailTLSCipher], r.Phases)
				}
			}
		})
	}
}

func TestTLSCheckSendsSNI(t *testing.T) {
	now := time.Now()
	pki := newTLSPKI(t, now.Add(48*time.Hour))
	good := pki.issue(t, "lab.example.org", []string{"lab.example.org"}, now.Add(-time.Hour), now.Add(72*time.Hour), x509.ExtKeyUsageServerAuth)
	sni := make(chan string, 1)
	cfg := &tls.Config{GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
		sni <- h.ServerName
		return &good, nil
	}}
	port := loopbackTLSPeer(t, cfg)
	opts := decodeTLS(t, map[string]any{"ca_file": pki.caFile, "server_name": "lab.example.org"})
	r := probe.Run(t.Context(), tlsKind.Checker, probe.Target{Host: "127.0.0.1", Port: port, Timeout: 10 * time.Second, Options: opts})
	if r.Outcome != probe.OutcomeOK {
		t.Fatalf("outcome %s: %v", r.Outcome, r.Err)
	}
	if got := <-sni; got != "lab.example.org" {
		t.Errorf("server saw SNI %q", got)
	}
}

func TestTLSCheckNotTLSAndNetworkFailures(t *testing.T) {
	sshLike := loopbackTCPPeer(t, func(c net.Conn) {
		_, _ = c.Write([]byte("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"))
		silentServe(c)
	})
	hangUp := loopbackTCPPeer(t, func(c net.Conn) {
		// Hang up (FIN) without a word, and keep reading so the
		// ClientHello is consumed and the kernel sends no RST.
		_ = c.(*net.TCPConn).CloseWrite()
		silentServe(c)
	})
	silent := loopbackTCPPeer(t, silentServe)
	cases := []struct {
		name string
		port int
		want probe.Outcome
		msg  string
	}{
		{"a banner instead of TLS", sshLike, probe.OutcomeProtocolError, "does not speak TLS"},
		{"hang up during the handshake", hangUp, probe.OutcomeProtocolError, "closed the connection"},
		{"silent peer", silent, probe.OutcomeServiceTimeout, ""},
		{"closed port", loopbackClosedTCPPort(t), probe.OutcomeRefused, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			timeout := 10 * time.Second
			if tc.want == probe.OutcomeServiceTimeout {
				timeout = 100 * time.Millisecond
			}
			r := probe.Run(t.Context(), tlsKind.Checker, probe.Target{Host: "127.0.0.1", Port: tc.port, Timeout: timeout})
			if r.Outcome != tc.want {
				t.Fatalf("outcome %s, want %s (%v)", r.Outcome, tc.want, r.Err)
			}
			if !strings.Contains(r.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", r.Error(), tc.msg)
			}
		})
	}
}

func TestTLSOptionsDecode(t *testing.T) {
	if _, err := Decode("tls", map[string]any{"min_version": "SSL3"}); err == nil || !strings.Contains(err.Error(), "min_version") {
		t.Errorf("bad min_version: %v", err)
	}
	if _, err := Decode("tls", map[string]any{"max_version": "TLS14"}); err == nil || !strings.Contains(err.Error(), "max_version") {
		t.Errorf("bad max_version: %v", err)
	}
	if _, err := Decode("tls", map[string]any{"min_version": "TLS13", "max_version": "TLS12"}); err == nil || !strings.Contains(err.Error(), "min_version TLS13 is above max_version TLS12") {
		t.Errorf("min_version above max_version: %v", err)
	}
	// Every TLS option block takes it: http and ldap too.
	if _, err := Decode("http", map[string]any{"tls": map[string]any{"min_version": "TLS13", "max_version": "TLS12"}}); err == nil {
		t.Error("http: min_version above max_version was accepted")
	}
	if _, err := Decode("ldap", map[string]any{"mode": "ldaps", "tls": map[string]any{"max_version": "TLS12"}}); err != nil {
		t.Errorf("ldap tls max_version: %v", err)
	}
	if _, err := Decode("tls", map[string]any{"ca_file": filepath.Join(t.TempDir(), "missing.pem")}); err == nil || !strings.Contains(err.Error(), "ca_file") {
		t.Errorf("missing ca_file: %v", err)
	}
	if _, err := Decode("tls", map[string]any{"expiry_warning": "1d"}); err == nil || !strings.Contains(err.Error(), "expiry_warning") {
		t.Errorf("unknown option: %v", err)
	}
}
