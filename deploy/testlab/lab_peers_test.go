//go:build lab

package testlab_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/deploy/testlab"
)

// TestRemoteServersListen: the file, mail, remote-desktop and RMI servers
// accept connections on the lab's IPv4 address.
func TestRemoteServersListen(t *testing.T) {
	testlab.Require(t)
	for _, port := range []int{testlab.FTPPort, testlab.SMTPPort, testlab.SMBPort, testlab.NetBIOSSessPort,
		testlab.RDPPort, testlab.VNCPort, testlab.RMIPort, testlab.WinRMPort, testlab.WinRMSPort,
		testlab.RPCBindPort, testlab.KerberosPort} {
		c, err := dialTCP(t, testlab.ServerAddr, port, wait)
		if err != nil {
			t.Errorf("tcp port %d: %v", port, err)
			continue
		}
		c.Close()
	}
}

// labTool runs a client program from Debian against the lab, bounded in time.
func labTool(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctxFor(t, 5*time.Second), name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = nil
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Logf("%s %v: %v", name, args, err)
	}
	return string(out)
}

// TestRPCBind asks rpcbind for its own registration over UDP and TCP.
func TestRPCBind(t *testing.T) {
	testlab.Require(t)
	for _, flag := range []string{"-u", "-t"} {
		out := labTool(t, nil, "rpcinfo", flag, testlab.ServerAddr, "portmapper", "2")
		if !strings.Contains(out, "program 100000 version 2 ready and waiting") {
			t.Errorf("rpcinfo %s: %s", flag, out)
		}
	}
}

// TestNetBIOSName asks nmbd for the lab's name, unicast.
func TestNetBIOSName(t *testing.T) {
	testlab.Require(t)
	out := labTool(t, nil, "nmblookup", "-s", testlab.File("samba/smb.conf"), "-U", testlab.ServerAddr,
		testlab.NetBIOSName)
	if !strings.Contains(out, testlab.ServerAddr+" "+testlab.NetBIOSName+"<00>") {
		t.Errorf("nmblookup: %s", out)
	}
}

// TestKerberos gets a ticket for the lab's user from the KDC, and the
// KDC's error for a principal it does not know.
func TestKerberos(t *testing.T) {
	testlab.Require(t)
	env := []string{"KRB5_CONFIG=" + testlab.File("krb5/krb5.conf"), "KRB5CCNAME=MEMORY:"}
	out := labTool(t, env, "kinit", "nobody@"+testlab.KerberosRealm)
	if !strings.Contains(out, "not found in Kerberos database") {
		t.Errorf("kinit for an unknown principal: %s", out)
	}
	cmd := exec.CommandContext(ctxFor(t, 5*time.Second), "kinit", testlab.KerberosUser+"@"+testlab.KerberosRealm)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(testlab.Secret(t, "krb5-user.pw") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("kinit %s: %v\n%s", testlab.KerberosUser, err, out)
	}
}

// TestSSDP sends minissdpd a unicast M-SEARCH for the lab's device.
func TestSSDP(t *testing.T) {
	testlab.Require(t)
	// Unconnected: an SSDP answer need not come from port 1900.
	c, err := net.ListenPacket("udp4", testlab.ClientAddr+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	req := fmt.Sprintf("M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: %s\r\n\r\n",
		testlab.SSDPSearchTarget)
	dst := &net.UDPAddr{IP: net.ParseIP(testlab.ServerAddr), Port: testlab.SSDPPort}
	if _, err := c.WriteTo([]byte(req), dst); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	n, _, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatalf("no answer to M-SEARCH: %v", err)
	}
	if !bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 200 OK\r\n")) || !bytes.Contains(buf[:n], []byte(testlab.SSDPSearchTarget)) {
		t.Errorf("answer %q", buf[:n])
	}
}
