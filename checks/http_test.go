package checks

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"maps"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/probe"
)

// appPKI is a CA of the test and certificates it signed for example.org
// and 127.0.0.1.
type appPKI struct {
	caFile  string
	valid   tls.Certificate
	expired tls.Certificate
	notAt   time.Time // NotAfter of valid
}

func newAppPKI(t *testing.T) *appPKI {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	now := time.Now()
	caKey := key()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "flowprobe test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(48 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, notAfter time.Time) tls.Certificate {
		k := key()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "example.org"},
			DNSNames: []string{"example.org"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
			NotBefore: now.Add(-72 * time.Hour), NotAfter: notAfter,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
	}
	p := &appPKI{notAt: now.Add(24 * time.Hour).Truncate(time.Second)}
	p.valid = leaf(2, p.notAt)
	p.expired = leaf(3, now.Add(-time.Hour))
	p.caFile = appFile(t, "ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})))
	return p
}

func (p *appPKI) server(t *testing.T, cert tls.Certificate, h http.Handler) int {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // failed handshakes are the point
	s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s.Listener.Addr().(*net.TCPAddr).Port
}

// appHTTPServer runs a plain HTTP server with h and returns its port.
func appHTTPServer(t *testing.T, h http.HandlerFunc) int {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.Start()
	t.Cleanup(s.Close)
	return s.Listener.Addr().(*net.TCPAddr).Port
}

func TestHTTPStatus(t *testing.T) {
	port := appHTTPServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			io.WriteString(w, "fine")
		case "/down":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/moved":
			http.Redirect(w, r, "/ok", http.StatusFound)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	})
	cases := []struct {
		name   string
		opts   map[string]any
		want   probe.Outcome
		status float64
	}{
		{"default path", nil, probe.OutcomeProtocolError, 404},
		{"2xx", map[string]any{"path": "/ok"}, probe.OutcomeOK, 200},
		{"5xx", map[string]any{"path": "/down"}, probe.OutcomeProtocolError, 503},
		{"5xx is valid", map[string]any{"path": "/down", "valid_status_codes": []int{503}}, probe.OutcomeOK, 503},
		{"redirect followed", map[string]any{"path": "/moved"}, probe.OutcomeOK, 200},
		{"redirect not followed", map[string]any{"path": "/moved", "no_follow_redirects": true}, probe.OutcomeProtocolError, 302},
		{"redirect is valid", map[string]any{"path": "/moved", "no_follow_redirects": true, "valid_status_codes": []int{302}}, probe.OutcomeOK, 302},
		{"redirect loop", map[string]any{"path": "/loop"}, probe.OutcomeProtocolError, 0},
		{"any status: a 404 proves an HTTP server", map[string]any{"any_status": true}, probe.OutcomeOK, 404},
		{"any status: a 503 too", map[string]any{"path": "/down", "any_status": true}, probe.OutcomeOK, 503},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := appRun(t, "http", port, tc.opts)
			appWant(t, r, tc.want)
			if r.Values[ValueHTTPStatus] != tc.status {
				t.Errorf("status value %v, want %v", r.Values[ValueHTTPStatus], tc.status)
			}
			if tc.want == probe.OutcomeProtocolError && tc.status != 0 &&
				r.Details[probe.DetailReason] == "" {
				t.Error("no reason for a wrong status")
			}
			if r.Phases[probe.PhaseConnect] <= 0 || r.Phases[probe.PhaseRequest] <= 0 || r.Phases[probe.PhaseTLS] != 0 {
				t.Errorf("phases %v", r.Phases)
			}
		})
	}
	r := appRun(t, "http", port, map[string]any{"path": "/moved"})
	if r.Details["redirects"] != "1" || !strings.HasSuffix(r.Details["final_url"], "/ok") {
		t.Errorf("details %v", r.Details)
	}
}

func TestHTTPRequestShape(t *testing.T) {
	type seen struct{ method, host, uri, header string }
	got := make(chan seen, 1)
	port := appHTTPServer(t, func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Method, r.Host, r.RequestURI, r.Header.Get("X-Probe")}
	})
	r := appRun(t, "http", port, map[string]any{
		"method": "HEAD", "path": "/health?full=1",
		"headers": map[string]string{"Host": "app.example.org", "X-Probe": "1"},
	})
	appWant(t, r, probe.OutcomeOK)
	want := seen{"HEAD", "app.example.org", "/health?full=1", "1"}
	if s := <-got; s != want {
		t.Errorf("the server saw %+v, want %+v", s, want)
	}
}

func TestHTTPBody(t *testing.T) {
	port := appHTTPServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/huge" {
			// The marker comes after the 64 KiB the check reads.
			chunk := strings.Repeat("x", 1<<16)
			for range 160 { // 10 MiB
				if _, err := io.WriteString(w, chunk); err != nil {
					return
				}
			}
			io.WriteString(w, "MARKER")
			return
		}
		io.WriteString(w, "status: green\n")
	})
	appWant(t, appRun(t, "http", port, map[string]any{"body_regexp": "status: (green|yellow)"}), probe.OutcomeOK)
	r := appRun(t, "http", port, map[string]any{"body_regexp": "status: red"})
	appWant(t, r, probe.OutcomeProtocolError)
	if r.Details[probe.DetailReason] != "body does not match body_regexp" {
		t.Errorf("reason %q", r.Details[probe.DetailReason])
	}
	appWant(t, appRun(t, "http", port, map[string]any{"path": "/huge", "body_regexp": "MARKER"}), probe.OutcomeProtocolError)
	appWant(t, appRun(t, "http", port, map[string]any{"path": "/huge", "body_regexp": "^x+"}), probe.OutcomeOK)
}

func TestHTTPS(t *testing.T) {
	pki := newAppPKI(t)
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	valid := pki.server(t, pki.valid, ok)
	expired := pki.server(t, pki.expired, ok)
	plain := appHTTPServer(t, ok)
	withCA := map[string]any{"tls": map[string]any{"ca_file": pki.caFile}}

	t.Run("valid", func(t *testing.T) {
		r := appRun(t, "http", valid, withCA) // a tls block means https
		appWant(t, r, probe.OutcomeOK)
		if r.Values[ValueTLSCertExpiry] != float64(pki.notAt.Unix()) ||
			r.Values[ValueTLSChainExpiry] != float64(pki.notAt.Unix()) {
			t.Errorf("values %v, want expiry %d", r.Values, pki.notAt.Unix())
		}
		if r.Phases[probe.PhaseTLS] <= 0 || r.Details["tls_version"] != "TLS 1.3" {
			t.Errorf("phases %v details %v", r.Phases, r.Details)
		}
	})
	t.Run("server name", func(t *testing.T) {
		r := appRun(t, "http", valid, map[string]any{"tls": map[string]any{"ca_file": pki.caFile, "server_name": "example.org"}})
		appWant(t, r, probe.OutcomeOK)
	})
	cases := []struct {
		name   string
		port   int
		opts   map[string]any
		want   probe.Outcome
		reason string
	}{
		{"unknown authority", valid, map[string]any{"tls": map[string]any{"ca_file": newAppPKI(t).caFile}}, probe.OutcomeTLSError, "certificate signed by unknown authority"},
		{"expired", expired, withCA, probe.OutcomeTLSError, "certificate expired"},
		{"wrong name", valid, map[string]any{"tls": map[string]any{"ca_file": pki.caFile, "server_name": "other.example.com"}}, probe.OutcomeTLSError, "certificate is not valid for host other.example.com"},
		{"TLS to a plain server", plain, withCA, probe.OutcomeProtocolError, ""},
		{"plain to a TLS server", valid, map[string]any{"scheme": "http"}, probe.OutcomeProtocolError, "status 400 is not a valid status code"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := appRun(t, "http", tc.port, tc.opts)
			appWant(t, r, tc.want)
			if r.Details[probe.DetailReason] != tc.reason {
				t.Errorf("reason %q, want %q", r.Details[probe.DetailReason], tc.reason)
			}
		})
	}
}

// appReadRequest reads an HTTP request head (bounded).
func appReadRequest(c net.Conn) {
	br := bufio.NewReader(io.LimitReader(c, 64<<10))
	for {
		line, err := br.ReadString('\n')
		if err != nil || line == "\r\n" {
			return
		}
	}
}

func TestHTTPHostilePeers(t *testing.T) {
	cases := map[string]struct {
		serve func(c net.Conn)
		want  probe.Outcome
	}{
		"silent":                   {appSilent, probe.OutcomeServiceTimeout},
		"closes without an answer": {func(c net.Conn) { appReadRequest(c) }, probe.OutcomeProtocolError},
		"ssh banner": {func(c net.Conn) {
			io.WriteString(c, "SSH-2.0-OpenSSH_9.2\r\n")
			appSilent(c)
		}, probe.OutcomeProtocolError},
		"huge header": {func(c net.Conn) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Big: ")
			chunk := strings.Repeat("b", 4096)
			for range 1024 { // 4 MiB at most
				if _, err := io.WriteString(c, chunk); err != nil {
					return
				}
			}
		}, probe.OutcomeProtocolError},
		"status line then silence": {func(c net.Conn) {
			appReadRequest(c)
			io.WriteString(c, "HTTP/1.1 200 OK\r\n")
			appSilent(c)
		}, probe.OutcomeServiceTimeout},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			appWant(t, appRun(t, "http", appTCPPeer(t, tc.serve), nil), tc.want)
		})
	}
	appWant(t, appRun(t, "http", appClosedTCPPort(t), nil), probe.OutcomeRefused)
}

func TestHTTPOptions(t *testing.T) {
	good := []map[string]any{
		nil,
		{"method": "HEAD", "path": "/a/b?c=d", "scheme": "https", "valid_status_codes": []int{200, 204}},
		{"headers": map[string]string{"Host": "example.org"}, "no_follow_redirects": true},
	}
	for _, raw := range good {
		if _, err := Decode("http", raw); err != nil {
			t.Errorf("%v: %v", raw, err)
		}
	}
	bad := map[string]map[string]any{
		"method":        {"method": "POST"},
		"relative path": {"path": "health"},
		"fragment":      {"path": "/#top"},
		"scheme":        {"scheme": "ftp"},
		"status":        {"valid_status_codes": []int{42}},
		"any and valid": {"any_status": true, "valid_status_codes": []int{200}},
		"header name":   {"headers": map[string]string{"Bad Header": "x"}},
		"regexp":        {"body_regexp": "("},
		"HEAD and body": {"method": "HEAD", "body_regexp": "x"},
		"tls on http":   {"scheme": "http", "tls": map[string]any{"insecure_skip_verify": true}},
		"tls ca file":   {"tls": map[string]any{"ca_file": "/nonexistent/ca.pem"}},
		"unknown":       {"url": "http://example.org/"},
	}
	for name, raw := range bad {
		if _, err := Decode("http", raw); err == nil {
			t.Errorf("%s: %v was accepted", name, raw)
		}
	}
}

// Catalog winrm flows get the http check on /wsman, passing on any HTTP
// answer: a WinRM listener answers a GET with 405, or 401 without
// credentials. Port 5986 speaks HTTPS.
func TestHTTPWinRMHint(t *testing.T) {
	kind, hint := Binder{}.KindFor("winrm", probe.TCP)
	if kind != "http" || hint["path"] != "/wsman" || hint["any_status"] != true || hint["no_follow_redirects"] != true {
		t.Fatalf("winrm binds to %s %v", kind, hint)
	}
	paths := make(chan string, 2)
	wsman := func(w http.ResponseWriter, r *http.Request) {
		paths <- r.URL.Path
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
	r := appRun(t, "http", appHTTPServer(t, wsman), hint)
	appWant(t, r, probe.OutcomeOK)
	if p := <-paths; p != "/wsman" || r.Details["status"] == "" {
		t.Errorf("path %q, details %v", p, r.Details)
	}

	pki := newAppPKI(t)
	tlsHint := maps.Clone(hint)
	tlsHint["tls"] = map[string]any{"ca_file": pki.caFile, "server_name": "example.org"}
	r = appRun(t, "http", pki.server(t, pki.valid, http.HandlerFunc(wsman)), tlsHint)
	appWant(t, r, probe.OutcomeOK)
	<-paths
	if r.Details[DetailTLSVersion] == "" {
		t.Errorf("no TLS on the https listener: %v", r.Details)
	}
	o := newHTTPOptions()
	for port, want := range map[int]string{5985: "http", 5986: "https", 443: "https", 80: "http"} {
		if got := o.scheme(port); got != want {
			t.Errorf("scheme for port %d: %s, want %s", port, got, want)
		}
	}
}
