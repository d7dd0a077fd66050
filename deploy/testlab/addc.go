//go:build linux

package testlab

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The domain every ADDC provisions: realm, NetBIOS domain, the DC's name.
const (
	ADRealm     = "FLOWPROBE.TEST"
	ADDomain    = "FLOWPROBE"
	ADDNSDomain = "flowprobe.test"
	ADHostName  = "DC1" // NetBIOS name of the DC
	ADHost      = "dc1.flowprobe.test"
	ADBaseDN    = "DC=flowprobe,DC=test"
	ADAdminDN   = "CN=Administrator,CN=Users,DC=flowprobe,DC=test"
	// ADSRV is the record a domain member looks up to find a DC.
	ADSRV = "_ldap._tcp.dc._msdcs.flowprobe.test"
)

// Addresses of an ADDC's link, used only inside its own namespaces.
const (
	ADClientAddr  = "10.92.0.1"
	ADAddr        = "10.92.0.2"
	ADClientAddr6 = "fd00:92::1"
	ADAddr6       = "fd00:92::2"
)

// Bounds of bringing a DC up.
const (
	adProvisionTimeout = 90 * time.Second
	adStartTimeout     = 60 * time.Second
	adStopTimeout      = 10 * time.Second
)

// ADDC is a Samba Active Directory domain controller of the test's own:
// two network namespaces, fpad-<random>-c (the client) and
// fpad-<random>-dc (the DC), joined by a veth pair (ADClientAddr and
// ADAddr, ADClientAddr6 and ADAddr6). The DC serves DNS, Kerberos,
// kpasswd, LDAP (389, StartTLS; 636 LDAPS), the Global Catalog (3268,
// 3269), CLDAP, SMB (445, 139) and NetBIOS names (137) from `samba -i`,
// and NTP from chronyd, as a Windows DC does. Its TLS certificate is
// issued for ADHost and both addresses by a CA of the test's own (CAFile).
// Nothing is written outside Dir.
type ADDC struct {
	// Pair: Dir holds the provisioned domain, the configs, the logs and
	// the secrets.
	Pair
	// PasswordFile holds the Administrator password; CAFile the CA of the
	// DC's certificate.
	PasswordFile, CAFile string
	// Provision and Start are how long samba-tool domain provision and
	// the start of the services (until all answered) took.
	Provision, Start time.Duration

	procs []adProc
}

// NewADDC provisions a domain, starts its DC and removes everything when
// the test ends. It fails the test when the DC does not answer in time.
func NewADDC(t testing.TB) *ADDC {
	t.Helper()
	for _, b := range []string{"samba", "samba-tool", "chronyd", "iptables", "ip6tables"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Fatalf("addc: %s is missing: run deploy/testlab/lab.sh install first", b)
		}
	}
	dc := &ADDC{Pair: newPair(t, "fpad", "dc",
		[]string{ADClientAddr + "/24", ADClientAddr6 + "/64"}, []string{ADAddr + "/24", ADAddr6 + "/64"})}
	if err := os.Mkdir(filepath.Join(dc.Dir, "run"), 0o755); err != nil {
		t.Fatalf("addc: %v", err)
	}
	dc.provision(t)
	start := time.Now()
	dc.spawn(t, "samba", "samba", "-i", "-M", "single", "-d", "1", "-s", filepath.Join(dc.Dir, "etc", "smb.conf"))
	dc.spawn(t, "chronyd", "chronyd", "-d", "-x", "-u", "root", "-f", dc.writeChrony(t))
	dc.waitReady(t)
	dc.Start = time.Since(start)
	t.Logf("addc: %s provisioned in %s, answering %s later", dc.NS, dc.Provision.Round(time.Millisecond), dc.Start.Round(time.Millisecond))
	return dc
}

// provision writes the secrets and the certificate, then runs samba-tool
// domain provision into Dir.
func (dc *ADDC) provision(t testing.TB) {
	t.Helper()
	pw := make([]byte, 12)
	_, _ = rand.Read(pw)
	// Upper and lower case, digits and a symbol: Samba's complexity rule.
	password := "Fp-" + hex.EncodeToString(pw) + "Z9"
	dc.PasswordFile = filepath.Join(dc.Dir, "admin.pw")
	writeFile(t, dc.PasswordFile, []byte(password+"\n"), 0o600)
	tls := dc.writeTLS(t)
	opts := []string{
		"interfaces = " + ADAddr + " " + ADAddr6, "bind interfaces only = yes",
		// Every path Samba would take under /var, /run or /etc goes into Dir.
		"log file = " + filepath.Join(dc.Dir, "log.%m"), "pid directory = " + filepath.Join(dc.Dir, "run"),
		"ncalrpc dir = " + filepath.Join(dc.Dir, "run", "ncalrpc"),
		"ntp signd socket directory = " + filepath.Join(dc.Dir, "run", "ntp_signd"),
		"winbindd socket directory = " + filepath.Join(dc.Dir, "run", "winbindd"),
		"usershare path = " + filepath.Join(dc.Dir, "usershares"),
		"smb passwd file = " + filepath.Join(dc.Dir, "private", "smbpasswd"),
		// The namespace has no way out: no forwarder to ask.
		"dns forwarder = 127.0.0.9",
		// winbindd and ntp_signd would use sockets outside Dir; dnsupdate
		// would rewrite records the provision already made.
		"server services = -winbindd -ntp_signd -dnsupdate",
		"load printers = no", "printcap name = /dev/null", "disable spoolss = yes",
		"tls enabled = yes", "tls keyfile = " + tls.key, "tls certfile = " + tls.cert, "tls cafile = " + dc.CAFile,
	}
	args := []string{"netns", "exec", dc.NS, "samba-tool", "domain", "provision", "--use-rfc2307",
		"--realm=" + ADRealm, "--domain=" + ADDomain, "--server-role=dc", "--dns-backend=SAMBA_INTERNAL",
		"--adminpass=" + password, "--targetdir=" + dc.Dir, "--host-name=" + strings.ToLower(ADHostName),
		"--host-ip=" + ADAddr, "--host-ip6=" + ADAddr6}
	for _, o := range opts {
		args = append(args, "--option="+o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), adProvisionTimeout)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	dc.Provision = time.Since(start)
	if err != nil {
		t.Fatalf("addc: samba-tool domain provision (%s): %v\n%s", dc.Provision.Round(time.Millisecond),
			err, bytes.ReplaceAll(out, []byte(password), []byte("<password>")))
	}
}

type tlsFiles struct{ key, cert string }

// writeTLS issues a CA and a server certificate for ADHost and the DC's
// addresses (Samba's own would carry no subjectAltName).
func (dc *ADDC) writeTLS(t testing.TB) tlsFiles {
	t.Helper()
	d := filepath.Join(dc.Dir, "tls")
	if err := os.Mkdir(d, 0o700); err != nil {
		t.Fatalf("addc: %v", err)
	}
	now := time.Now()
	caKey := newKey(t)
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "flowprobe AD lab CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatalf("addc: %v", err)
	}
	key := newKey(t)
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: ADHost},
		DNSNames:    []string{ADHost, ADDNSDomain},
		IPAddresses: []net.IP{net.ParseIP(ADAddr), net.ParseIP(ADAddr6)},
		NotBefore:   now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatalf("addc: %v", err)
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatalf("addc: %v", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("addc: %v", err)
	}
	files := tlsFiles{key: filepath.Join(d, "key.pem"), cert: filepath.Join(d, "cert.pem")}
	dc.CAFile = filepath.Join(d, "ca.pem")
	// Samba refuses a key file others may read.
	writeFile(t, files.key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	writeFile(t, files.cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}), 0o644)
	writeFile(t, dc.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644)
	return files
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("addc: %v", err)
	}
	return k
}

// writeChrony writes the config of the DC's time service: its own clock
// at stratum 8, no control socket, everything under Dir.
func (dc *ADDC) writeChrony(t testing.TB) string {
	t.Helper()
	p := filepath.Join(dc.Dir, "chrony.conf")
	writeFile(t, p, []byte(fmt.Sprintf("cmdport 0\nbindcmdaddress /\npidfile %s\nlocal stratum 8\nallow all\n",
		filepath.Join(dc.Dir, "run", "chronyd.pid"))), 0o644)
	return p
}

// spawn starts a daemon in the DC's namespace (see spawnIn).
func (dc *ADDC) spawn(t testing.TB, name string, argv ...string) {
	t.Helper()
	dc.procs = append(dc.procs, spawnIn(t, dc.NS, dc.Dir, name, argv...))
}

// spawnIn starts a daemon in namespace ns in a session of its own,
// logging to dir/<name>.out; the test's end stops its process group.
func spawnIn(t testing.TB, ns, dir, name string, argv ...string) adProc {
	t.Helper()
	logPath := filepath.Join(dir, name+".out")
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("testlab: %v", err)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		t.Fatalf("testlab: start %s: %v", name, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); log.Close() }()
	pgid := cmd.Process.Pid
	t.Cleanup(func() {
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(adStopTimeout):
			t.Errorf("testlab: %s did not stop within %s after SIGTERM", name, adStopTimeout)
		}
		// Children that outlive the leader go too.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	})
	return adProc{name: name, log: logPath, done: done}
}

type adProc struct {
	name, log string
	done      chan error
}

// waitReady polls, from the client namespace, until Kerberos, kpasswd and
// SMB accept connections, LDAP answers a bind, DNS the DC's SRV record,
// NTP a request and the NetBIOS name service lists the DC's names, or
// fails the test at adStartTimeout with the daemons' logs.
func (dc *ADDC) waitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(adStartTimeout)
	var last error
	for attempt := 0; time.Now().Before(deadline); attempt++ {
		for _, p := range dc.procs {
			select {
			case err := <-p.done:
				t.Fatalf("addc: %s exited while starting: %v\n%s", p.name, err, tail(p.log))
			default:
			}
		}
		inNamespace(t, dc.ClientNS, func() { last = adAnswers() })
		if last == nil {
			return
		}
		time.Sleep(200 * time.Millisecond) // polling a daemon's start, not synchronising tests
	}
	var logs strings.Builder
	for _, p := range dc.procs {
		fmt.Fprintf(&logs, "--- %s\n%s\n", p.name, tail(p.log))
	}
	t.Fatalf("addc: the DC did not answer within %s: %v\n%s", adStartTimeout, last, logs.String())
}

// adAnswers checks once that each of the DC's services answers.
func adAnswers() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var d net.Dialer
	for _, port := range []string{"88", "445", "464"} {
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(ADAddr, port))
		if err != nil {
			return err
		}
		c.Close()
	}
	// An anonymous LDAPv3 simple bind (RFC 4511 §4.2), message ID 1.
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(ADAddr, "389"))
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte{0x30, 0x0c, 0x02, 0x01, 0x01, 0x60, 0x07, 0x02, 0x01, 0x03, 0x04, 0x00, 0x80, 0x00}); err != nil {
		return fmt.Errorf("ldap: %w", err)
	}
	b := make([]byte, 64)
	if n, err := c.Read(b); err != nil || n < 2 || b[0] != 0x30 {
		return fmt.Errorf("ldap: no bind response (%d bytes): %w", n, err)
	}
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, net.JoinHostPort(ADAddr, "53"))
	}}
	if _, srv, err := r.LookupSRV(ctx, "ldap", "tcp", "dc._msdcs."+ADDNSDomain); err != nil || len(srv) == 0 {
		return fmt.Errorf("dns %s: %d records: %w", ADSRV, len(srv), err)
	}
	ntp := make([]byte, 48)
	ntp[0] = 0x23 // NTPv4 client request: LI 0, version 4, mode 3
	if _, err := udpAnswer(ctx, ADAddr, "123", ntp); err != nil {
		return fmt.Errorf("ntp: %w", err)
	}
	// A NetBIOS node status query for "*" (RFC 1002 §4.2.17): the DC has
	// registered its names once they are in the table.
	nbstat := append([]byte{0x46, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x20, 'C', 'K'},
		append(bytes.Repeat([]byte("A"), 30), 0, 0, 0x21, 0, 1)...)
	b, err = udpAnswer(ctx, ADAddr, "137", nbstat)
	if err != nil {
		return fmt.Errorf("netbios-ns: %w", err)
	}
	for _, name := range []string{ADHostName, ADDomain} {
		if !bytes.Contains(b, []byte(name+" ")) {
			return fmt.Errorf("netbios-ns: %s not registered yet", name)
		}
	}
	return nil
}

// udpAnswer sends one datagram to host's port and returns the answer.
func udpAnswer(ctx context.Context, host, port string, req []byte) ([]byte, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write(req); err != nil {
		return nil, err
	}
	b := make([]byte, 1500)
	n, err := c.Read(b)
	return b[:n], err
}

// Command is a command run inside the client namespace.
func (dc *ADDC) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", dc.ClientNS, name}, args...)...)
}

func writeFile(t testing.TB, path string, b []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatalf("addc: %v", err)
	}
	if err := os.WriteFile(path, b, mode); err != nil {
		t.Fatalf("addc: %v", err)
	}
}

// tail is the end of a log file, for a failure message.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "(no log)"
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
