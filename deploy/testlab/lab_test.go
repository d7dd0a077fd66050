//go:build lab

package testlab_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/beevik/ntp"
	"github.com/go-ldap/ldap/v3"
	"github.com/gosnmp/gosnmp"
	"github.com/miekg/dns"

	"github.com/flowprobe/flowprobe/deploy/testlab"
)

// wait bounds every single exchange with a lab server; the servers are one
// veth hop away, so anything slower than this is a failure.
const wait = 2 * time.Second

// dropWait is how long a test waits for an answer that a DROP rule swallows.
const dropWait = 500 * time.Millisecond

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func dialTCP(t *testing.T, host string, port int, d time.Duration) (net.Conn, error) {
	t.Helper()
	var dialer net.Dialer
	return dialer.DialContext(ctxFor(t, d), "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
}

func labPool(t *testing.T) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(testlab.File("ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("ca.pem holds no certificate")
	}
	return pool
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
}

func TestStateFiles(t *testing.T) {
	testlab.Require(t)
	for _, name := range []string{"ldap-admin.pw", "ldap-user.pw", "snmp-auth.pw", "snmp-priv.pw", "iscsi-chap.secret",
		"client-key.pem", "lab-key.pem"} {
		fi, err := os.Stat(testlab.File(name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
	if n := len(testlab.Secret(t, "iscsi-chap.secret")); n < 12 || n > 16 {
		t.Errorf("CHAP secret has %d characters, initiators want 12 to 16", n)
	}
	if _, err := tls.LoadX509KeyPair(testlab.File("client.pem"), testlab.File("client-key.pem")); err != nil {
		t.Errorf("client certificate: %v", err)
	}
}

func TestTCPServicesAnswer(t *testing.T) {
	testlab.Require(t)
	ports := []int{testlab.HTTPPort, testlab.HTTPSPort, testlab.HTTPSExpired, testlab.HTTPSWrongHost,
		testlab.HTTPSSelfSign, testlab.HTTPSClientAuth, testlab.DNSPort, testlab.LDAPPort, testlab.LDAPSPort,
		testlab.ISCSIPort, testlab.SSHPort, testlab.SilentTCPPort}
	for _, host := range []string{testlab.ServerAddr, testlab.ServerAddr6} {
		for _, port := range ports {
			c, err := dialTCP(t, host, port, wait)
			if err != nil {
				t.Errorf("tcp %s port %d: %v", host, port, err)
				continue
			}
			c.Close()
		}
	}
}

func TestClosedPortsAreRefused(t *testing.T) {
	testlab.Require(t)
	_, err := dialTCP(t, testlab.ServerAddr, testlab.ClosedTCPPort, wait)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("tcp port %d: got %v, want ECONNREFUSED", testlab.ClosedTCPPort, err)
	}
	if err := udpExchange(t, testlab.ServerAddr, testlab.ClosedUDPPort, wait); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("udp port %d: got %v, want ECONNREFUSED", testlab.ClosedUDPPort, err)
	}
}

// udpExchange sends one datagram on a connected socket and expects it back
// (the echo service); it returns the error of the read.
func udpExchange(t *testing.T, host string, port int, d time.Duration) error {
	t.Helper()
	var dialer net.Dialer
	c, err := dialer.DialContext(ctxFor(t, wait), "udp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(d)); err != nil {
		return err
	}
	msg := []byte("flowprobe lab echo")
	if _, err := c.Write(msg); err != nil {
		return err
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if string(buf[:n]) != string(msg) {
		return fmt.Errorf("echo answered %q", buf[:n])
	}
	return nil
}

func TestUDPEcho(t *testing.T) {
	testlab.Require(t)
	for _, host := range []string{testlab.ServerAddr, testlab.ServerAddr6} {
		if err := udpExchange(t, host, testlab.EchoUDPPort, wait); err != nil {
			t.Errorf("udp echo %s: %v", host, err)
		}
	}
}

func TestSilentTCPPeerSaysNothing(t *testing.T) {
	testlab.Require(t)
	c, err := dialTCP(t, testlab.ServerAddr, testlab.SilentTCPPort, wait)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetReadDeadline(time.Now().Add(dropWait)); err != nil {
		t.Fatal(err)
	}
	n, err := c.Read(make([]byte, 1))
	if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read from the silent peer: %d bytes, %v; want nothing until the deadline", n, err)
	}
}

func TestSSHBanner(t *testing.T) {
	testlab.Require(t)
	c, err := dialTCP(t, testlab.ServerAddr, testlab.SSHPort, wait)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(io.LimitReader(c, 256)).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "SSH-2.0-") {
		t.Errorf("ssh banner %q, %v", line, err)
	}
}

func TestHTTP(t *testing.T) {
	testlab.Require(t)
	client := &http.Client{Timeout: wait, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	for _, tc := range []struct {
		path string
		code int
	}{{"/", 200}, {"/redirect", 302}, {"/error", 500}, {"/nothing-here", 404}} {
		resp, err := client.Get("http://" + testlab.Addr(testlab.HTTPPort) + tc.path)
		if err != nil {
			t.Errorf("GET %s: %v", tc.path, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("GET %s: status %d, want %d", tc.path, resp.StatusCode, tc.code)
		}
	}
}

func tlsHandshake(t *testing.T, port int, cfg *tls.Config) error {
	t.Helper()
	d := tls.Dialer{NetDialer: &net.Dialer{}, Config: cfg}
	c, err := d.DialContext(ctxFor(t, wait), "tcp", testlab.Addr(port))
	if err != nil {
		return err
	}
	defer c.Close()
	// TLS 1.3 reports a missing client certificate only after the
	// handshake: an HTTP exchange tells whether the server accepted us.
	if err := c.SetDeadline(time.Now().Add(wait)); err != nil {
		return err
	}
	if _, err := io.WriteString(c, "GET / HTTP/1.0\r\nHost: lab.example.org\r\n\r\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(io.LimitReader(c, 4096)).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "HTTP/1.1 200") {
		return fmt.Errorf("answer %q", line)
	}
	return nil
}

func TestTLSCertificates(t *testing.T) {
	testlab.Require(t)
	pool := labPool(t)
	cfg := &tls.Config{RootCAs: pool, ServerName: testlab.ServerName}

	if err := tlsHandshake(t, testlab.HTTPSPort, cfg); err != nil {
		t.Errorf("valid certificate: %v", err)
	}
	byIP := &tls.Config{RootCAs: pool, ServerName: testlab.ServerAddr}
	if err := tlsHandshake(t, testlab.HTTPSPort, byIP); err != nil {
		t.Errorf("valid certificate checked against the IP address: %v", err)
	}

	var invalid x509.CertificateInvalidError
	if err := tlsHandshake(t, testlab.HTTPSExpired, cfg); !errors.As(err, &invalid) || invalid.Reason != x509.Expired {
		t.Errorf("expired certificate: got %v, want x509 Expired", err)
	}
	var host x509.HostnameError
	if err := tlsHandshake(t, testlab.HTTPSWrongHost, cfg); !errors.As(err, &host) {
		t.Errorf("wrong-host certificate: got %v, want x509.HostnameError", err)
	}
	var unknown x509.UnknownAuthorityError
	if err := tlsHandshake(t, testlab.HTTPSSelfSign, cfg); !errors.As(err, &unknown) {
		t.Errorf("self-signed certificate: got %v, want x509.UnknownAuthorityError", err)
	}

	// nginx completes the handshake without a client certificate and then
	// answers 400 ("No required SSL certificate was sent").
	if err := tlsHandshake(t, testlab.HTTPSClientAuth, cfg); err == nil || !strings.Contains(err.Error(), `"HTTP/1.1 400`) {
		t.Errorf("client-auth port without a client certificate: got %v, want an HTTP 400 answer", err)
	}
	cert, err := tls.LoadX509KeyPair(testlab.File("client.pem"), testlab.File("client-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	withCert := &tls.Config{RootCAs: pool, ServerName: testlab.ServerName, Certificates: []tls.Certificate{cert}}
	if err := tlsHandshake(t, testlab.HTTPSClientAuth, withCert); err != nil {
		t.Errorf("client-auth port with the lab client certificate: %v", err)
	}
}

func TestNTP(t *testing.T) {
	testlab.Require(t)
	r, err := ntp.QueryWithOptions(testlab.Addr(testlab.NTPPort), ntp.QueryOptions{Timeout: wait})
	if err != nil {
		t.Fatalf("ntp :%d: %v", testlab.NTPPort, err)
	}
	if err := r.Validate(); err != nil || r.Stratum != 8 || r.Leap != ntp.LeapNoWarning {
		t.Errorf("ntp :%d: stratum %d leap %d validate %v; want a synchronised stratum 8", testlab.NTPPort, r.Stratum, r.Leap, err)
	}
	r, err = ntp.QueryWithOptions(testlab.Addr(testlab.NTPUnsyncPort), ntp.QueryOptions{Timeout: wait})
	if err != nil {
		t.Fatalf("ntp :%d: %v", testlab.NTPUnsyncPort, err)
	}
	if r.Stratum != 0 || r.Leap != ntp.LeapNotInSync {
		t.Errorf("ntp :%d: stratum %d leap %d; want stratum 0, leap 3 (unsynchronised)", testlab.NTPUnsyncPort, r.Stratum, r.Leap)
	}
}

func TestDNS(t *testing.T) {
	testlab.Require(t)
	for _, proto := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: proto, Timeout: wait}
		ask := func(name string, qtype uint16) *dns.Msg {
			t.Helper()
			m := new(dns.Msg)
			m.SetQuestion(name, qtype)
			r, _, err := c.Exchange(m, testlab.Addr(testlab.DNSPort))
			if err != nil {
				t.Fatalf("dns %s %s: %v", proto, name, err)
			}
			return r
		}
		r := ask(testlab.DNSA+".", dns.TypeA)
		if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != testlab.ServerAddr {
			t.Errorf("%s A %s: %v", proto, testlab.DNSA, r.Answer)
		}
		r = ask(testlab.DNSA+".", dns.TypeAAAA)
		if len(r.Answer) != 1 || !r.Answer[0].(*dns.AAAA).AAAA.Equal(net.ParseIP(testlab.ServerAddr6)) {
			t.Errorf("%s AAAA %s: %v", proto, testlab.DNSA, r.Answer)
		}
		r = ask(testlab.DNSSRV+".", dns.TypeSRV)
		if len(r.Answer) != 1 {
			t.Errorf("%s SRV %s: %v", proto, testlab.DNSSRV, r.Answer)
		} else if srv := r.Answer[0].(*dns.SRV); srv.Priority != 0 || srv.Weight != 100 || srv.Port != 389 || srv.Target != "lab.example.org." {
			t.Errorf("%s SRV %s: %v", proto, testlab.DNSSRV, srv)
		}
		r = ask(testlab.DNSMissing+".", dns.TypeA)
		if r.Rcode != dns.RcodeNameError {
			t.Errorf("%s A %s: rcode %s, want NXDOMAIN", proto, testlab.DNSMissing, dns.RcodeToString[r.Rcode])
		}
		r = ask("www.example.com.", dns.TypeA)
		if r.Rcode != dns.RcodeRefused {
			t.Errorf("%s A www.example.com: rcode %s, want REFUSED (the lab forwards nothing)", proto, dns.RcodeToString[r.Rcode])
		}
	}
}

func ldapConn(t *testing.T, url string, cfg *tls.Config) *ldap.Conn {
	t.Helper()
	opts := []ldap.DialOpt{ldap.DialWithDialer(&net.Dialer{Timeout: wait})}
	if cfg != nil {
		opts = append(opts, ldap.DialWithTLSConfig(cfg))
	}
	l, err := ldap.DialURL(url, opts...)
	if err != nil {
		t.Fatalf("ldap dial %s: %v", url, err)
	}
	l.SetTimeout(wait)
	t.Cleanup(func() { l.Close() })
	return l
}

func TestLDAP(t *testing.T) {
	testlab.Require(t)
	cfg := &tls.Config{RootCAs: labPool(t), ServerName: testlab.ServerName}
	plain := "ldap://" + testlab.Addr(testlab.LDAPPort)

	l := ldapConn(t, plain, nil)
	if err := l.UnauthenticatedBind(""); err != nil {
		t.Errorf("anonymous bind: %v", err)
	}
	if err := l.Bind(testlab.LDAPUserDN, "not-the-password"); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		t.Errorf("bind with a wrong password: got %v, want invalidCredentials (49)", err)
	}

	l = ldapConn(t, plain, nil)
	if err := l.StartTLS(cfg); err != nil {
		t.Fatalf("StartTLS: %v", err)
	}
	if err := l.Bind(testlab.LDAPUserDN, testlab.Secret(t, "ldap-user.pw")); err != nil {
		t.Errorf("bind as %s over StartTLS: %v", testlab.LDAPUserDN, err)
	}
	res, err := l.Search(ldap.NewSearchRequest(testlab.LDAPUserDN, ldap.ScopeBaseObject, ldap.NeverDerefAliases,
		1, 2, false, "(objectClass=*)", []string{"uid"}, nil))
	if err != nil || len(res.Entries) != 1 || res.Entries[0].GetAttributeValue("uid") != "alice" {
		t.Errorf("search %s: %v %v", testlab.LDAPUserDN, res, err)
	}

	l = ldapConn(t, "ldaps://"+testlab.Addr(testlab.LDAPSPort), cfg)
	if err := l.Bind(testlab.LDAPAdminDN, testlab.Secret(t, "ldap-admin.pw")); err != nil {
		t.Errorf("bind as %s over LDAPS: %v", testlab.LDAPAdminDN, err)
	}
}

func snmpSysName(t *testing.T, g *gosnmp.GoSNMP) {
	t.Helper()
	if err := g.Connect(); err != nil {
		t.Fatalf("snmp connect: %v", err)
	}
	defer g.Conn.Close()
	pkt, err := g.Get([]string{".1.3.6.1.2.1.1.5.0"})
	if err != nil {
		t.Fatalf("snmp %v get sysName: %v", g.Version, err)
	}
	if len(pkt.Variables) != 1 || pkt.Variables[0].Type != gosnmp.OctetString ||
		string(pkt.Variables[0].Value.([]byte)) != testlab.ServerName {
		t.Errorf("snmp %v sysName: %+v", g.Version, pkt.Variables)
	}
}

func TestSNMP(t *testing.T) {
	testlab.Require(t)
	snmpSysName(t, &gosnmp.GoSNMP{Target: testlab.ServerAddr, Port: testlab.SNMPPort, Version: gosnmp.Version2c,
		Community: testlab.SNMPCommunity, Timeout: wait, Retries: 0})
	snmpSysName(t, &gosnmp.GoSNMP{Target: testlab.ServerAddr, Port: testlab.SNMPPort, Version: gosnmp.Version3,
		Timeout: wait, Retries: 0, SecurityModel: gosnmp.UserSecurityModel, MsgFlags: gosnmp.AuthPriv,
		SecurityParameters: &gosnmp.UsmSecurityParameters{UserName: testlab.SNMPUser,
			AuthenticationProtocol: gosnmp.SHA, AuthenticationPassphrase: testlab.Secret(t, "snmp-auth.pw"),
			PrivacyProtocol: gosnmp.AES, PrivacyPassphrase: testlab.Secret(t, "snmp-priv.pw")}})
}

// TestISCSI uses libiscsi's user-space initiator, the reference client of
// the lab, to list the targets and to log in to the CHAP target.
func TestISCSI(t *testing.T) {
	testlab.Require(t)
	ctx := ctxFor(t, 10*time.Second)
	out, err := exec.CommandContext(ctx, "iscsi-ls", "-i", "iqn.2024-01.org.example.lab:test",
		"iscsi://"+testlab.ServerAddr+"/").CombinedOutput()
	if err != nil {
		t.Fatalf("iscsi-ls: %v\n%s", err, out)
	}
	for _, iqn := range []string{testlab.ISCSITarget, testlab.ISCSIChap} {
		if !strings.Contains(string(out), "Target:"+iqn+" ") {
			t.Errorf("iscsi-ls does not list %s:\n%s", iqn, out)
		}
	}
	inq := func(secret string) error {
		url := fmt.Sprintf("iscsi://%s%%%s@%s/%s/1", testlab.ISCSIChapUser, secret, testlab.ServerAddr, testlab.ISCSIChap)
		return exec.CommandContext(ctx, "iscsi-inq", "-i", "iqn.2024-01.org.example.lab:test", url).Run()
	}
	if err := inq(testlab.Secret(t, "iscsi-chap.secret")); err != nil {
		t.Errorf("CHAP login with the lab secret: %v", err)
	}
	if err := inq("wrong-secret-00"); err == nil {
		t.Errorf("CHAP login with a wrong secret succeeded")
	}
}
