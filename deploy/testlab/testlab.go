// Package testlab gives integration tests access to the lab of real servers
// that deploy/testlab/lab.sh brings up inside a network namespace: their
// addresses, ports, credentials and certificates, and a firewall switch that
// DROPs or REJECTs chosen ports for the length of one test.
//
// Integration tests carry the build tag "lab" and call Require first. The
// lab's state directory is named by the environment variable FLOWPROBE_LAB;
// when the tag is set and the lab is not up, Require fails the test: a
// missing server is a failure, not a skip.
package testlab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// Addresses of the veth pair between the host (client side) and the lab
// namespace (server side). Tests send traffic only to ServerAddr/ServerAddr6.
const (
	Namespace   = "fplab"
	ClientAddr  = "10.200.0.1"
	ServerAddr  = "10.200.0.2"
	ClientAddr6 = "fd00:200::1"
	ServerAddr6 = "fd00:200::2"
	// ClientNamespace is a second namespace for tests that run flowprobe
	// itself on the far side (listen in one namespace, check from another).
	ClientNamespace = "fplab-client"
	PeerAddr        = "10.200.1.2" // address of ClientNamespace, reachable from the lab
)

// Names and ports of the lab's services.
const (
	Domain         = "example.org"
	ServerName     = "lab.example.org" // the name in the valid certificates
	HTTPPort       = 80                // nginx, plain HTTP
	HTTPSPort      = 443               // nginx, valid certificate for ServerName
	HTTPSExpired   = 8443              // nginx, expired certificate
	HTTPSWrongHost = 9443              // nginx, certificate for wrong.example.net
	HTTPSSelfSign  = 10443             // nginx, self-signed certificate
	NTPPort        = 123               // chrony, local stratum 8 (synchronised)
	NTPUnsyncPort  = 1123              // chrony with no source (unsynchronised)
	DNSPort        = 53                // unbound or dnsmasq, zone example.org
	LDAPPort       = 389               // slapd, plain and StartTLS
	LDAPSPort      = 636               // slapd, LDAPS
	SNMPPort       = 161               // snmpd
	ISCSIPort      = 3260              // tgt
	SSHPort        = 22                // openssh
	ClosedTCPPort  = 7                 // nothing listens (RST)
	ClosedUDPPort  = 9                 // nothing listens (ICMP port unreachable)
	EchoUDPPort    = 7007              // a UDP service that answers (echo)
	SilentTCPPort  = 7008              // accepts, then never says a word
	LDAPBase       = "dc=example,dc=org"
	LDAPAdminDN    = "cn=admin,dc=example,dc=org"
	LDAPUserDN     = "uid=alice,ou=people,dc=example,dc=org"
	SNMPCommunity  = "public"
	SNMPUser       = "labuser" // v3 authPriv, SHA + AES
	ISCSITarget    = "iqn.2024-01.org.example.lab:disk1"
	ISCSIChap      = "iqn.2024-01.org.example.lab:chap"
	ISCSIChapUser  = "labchap"
	DNSA           = "lab.example.org"        // A → ServerAddr, AAAA → ServerAddr6
	DNSSRV         = "_ldap._tcp.example.org" // SRV 0 100 389 lab.example.org.
	DNSMissing     = "missing.example.org"    // NXDOMAIN
)

// File, mail, remote-desktop and RMI servers (IPv4 only, on ServerAddr).
const (
	FTPPort         = 21   // vsftpd: "220 flowprobe lab FTP"; nobody can log in
	SMTPPort        = 25   // exim4 (Debian's configuration): "220 … ESMTP Exim …"
	SMBPort         = 445  // smbd: SMB 2.0.2 to 3.1.1, signing enabled, not required; share "lab"
	NetBIOSSessPort = 139  // smbd behind a NetBIOS session (any called name)
	RDPPort         = 3389 // xrdp: X.224 with TLS (the lab certificate) or standard RDP security
	VNCPort         = 5900 // TigerVNC Xvnc: RFB 3.8, security type None
	RMIPort         = 1099 // rmiregistry (Debian's default JRE)
	WinRMPort       = 5985 // nginx standing in for WinRM: /wsman answers 405, any other path 404
	WinRMSPort      = 5986 // the same over TLS with the lab certificate
	FTPBanner       = "220 flowprobe lab FTP"
)

// Servers for the UDP kinds (IPv4 only, on ServerAddr).
const (
	RPCBindPort      = 111 // rpcbind, udp and tcp: portmapper versions 2 to 4
	NetBIOSNamePort  = 137 // nmbd, udp: the name LAB<00>/<20> in workgroup FPLAB
	NetBIOSName      = "LAB"
	SSDPPort         = 1900 // minissdpd, udp: answers an M-SEARCH for SSDPSearchTarget (or ssdp:all)
	SSDPSearchTarget = "urn:schemas-upnp-org:device:flowprobe-lab:1"
	KerberosPort     = 88 // MIT krb5kdc, udp and tcp
	KerberosRealm    = "LAB.EXAMPLE.ORG"
	KerberosUser     = "alice" // password in File("krb5-user.pw")
)

// HTTPSClientAuth is nginx with the valid certificate that also requires a
// client certificate from the lab CA (File("client.pem"), File("client-key.pem")).
const HTTPSClientAuth = 11443

// Action is what the firewall switch does to packets for one port.
type Action string

// Firewall actions, as iptables/nftables name them.
const (
	Drop              Action = "drop"
	RejectTCPReset    Action = "tcp-reset"
	RejectPortUnreach Action = "port-unreachable"
	RejectAdminProhib Action = "admin-prohibited"
	RejectHostUnreach Action = "host-unreachable"
	RejectNetUnreach  Action = "net-unreachable"
)

// Dir is the lab's state directory (certificates, secrets), from FLOWPROBE_LAB.
func Dir() string { return os.Getenv("FLOWPROBE_LAB") }

// Require fails the test unless the lab is up.
func Require(t testing.TB) {
	t.Helper()
	d := Dir()
	if d == "" {
		t.Fatal("FLOWPROBE_LAB is not set: run the integration tests through ./test.sh as root, which brings the lab up")
	}
	if _, err := os.Stat(filepath.Join(d, "up")); err != nil {
		t.Fatalf("the lab is not up (%v): run deploy/testlab/lab.sh up as root", err)
	}
}

// File returns the path of a file in the lab's state directory:
// "ca.pem" (the lab CA), "ldap-admin.pw", "ldap-user.pw", "snmp-auth.pw",
// "snmp-priv.pw", "iscsi-chap.secret", "client.pem"/"client-key.pem".
func File(name string) string { return filepath.Join(Dir(), name) }

// Secret returns the content of a secret file of the lab, trimmed.
func Secret(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(File(name))
	if err != nil {
		t.Fatalf("lab secret: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// Script is the path of lab.sh.
func Script() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "lab.sh")
}

// Firewall installs a rule in the lab namespace that applies action to
// packets for proto/port (port 0 with proto "icmp" means echo requests) and
// removes it when the test ends.
func Firewall(t testing.TB, proto string, port int, action Action) {
	t.Helper()
	args := []string{"fw", "add", proto, strconv.Itoa(port), string(action)}
	if out, err := exec.Command(Script(), args...).CombinedOutput(); err != nil {
		t.Fatalf("lab firewall %v: %v\n%s", args, err, out)
	}
	t.Cleanup(func() {
		args[1] = "del"
		if out, err := exec.Command(Script(), args...).CombinedOutput(); err != nil {
			t.Errorf("lab firewall %v: %v\n%s", args, err, out)
		}
	})
}

// Addr joins the lab server address and a port.
func Addr(port int) string { return fmt.Sprintf("%s:%d", ServerAddr, port) }
