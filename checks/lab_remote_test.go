//go:build lab

package checks

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/deploy/testlab"
	"github.com/flowprobe/flowprobe/probe"
)

// labHinted runs the check a catalog tcp flow with app hint app gets (see
// labBound in lab_udpkinds_test.go).
func labHinted(t *testing.T, app string, port int, extra map[string]any) probe.Result {
	t.Helper()
	return labBound(t, app, probe.TCP, port, extra, 5*time.Second)
}

// TestLabBanner greets vsftpd and exim as catalog ftp and smtp flows do.
func TestLabBanner(t *testing.T) {
	testlab.Require(t)
	t.Run("ftp vsftpd", func(t *testing.T) {
		r := labHinted(t, "ftp", testlab.FTPPort, map[string]any{"expect": "^220 flowprobe lab FTP$"})
		labWant(t, r, probe.OutcomeOK)
		if r.Details[DetailBanner] != testlab.FTPBanner || r.Details[DetailReplyCode] != "220" ||
			r.Details[DetailProtocol] != "ftp" {
			t.Errorf("details %v", r.Details)
		}
		if r.Phases[probe.PhaseConnect] <= 0 || r.Phases[probe.PhaseRequest] <= 0 {
			t.Errorf("phases %v", r.Phases)
		}
	})
	t.Run("smtp exim", func(t *testing.T) {
		r := labHinted(t, "smtp", testlab.SMTPPort, map[string]any{"expect": `ESMTP Exim 4\.`})
		labWant(t, r, probe.OutcomeOK)
		if !strings.HasPrefix(r.Details[DetailBanner], "220 ") || r.Details[DetailProtocol] != "smtp" {
			t.Errorf("details %v", r.Details)
		}
	})
	t.Run("either protocol", func(t *testing.T) {
		labWant(t, labApp(t, "banner", testlab.SMTPPort, nil, 5*time.Second), probe.OutcomeOK)
	})
	t.Run("expect names another server", func(t *testing.T) {
		r := labApp(t, "banner", testlab.FTPPort, map[string]any{"expect": "ESMTP Postfix"}, 5*time.Second)
		labWant(t, r, probe.OutcomeProtocolError)
		if r.Details[probe.DetailReason] != "greeting does not match expect" {
			t.Errorf("reason %q", r.Details[probe.DetailReason])
		}
	})
	t.Run("ssh server is no ftp server", func(t *testing.T) {
		r := labHinted(t, "ftp", testlab.SSHPort, nil)
		labWant(t, r, probe.OutcomeProtocolError)
		if !strings.HasPrefix(r.Details[probe.DetailReason], `not a greeting: "SSH-2.0-`) {
			t.Errorf("reason %q", r.Details[probe.DetailReason])
		}
	})
}

// TestLabSMB negotiates with Samba's smbd, directly and behind NetBIOS.
func TestLabSMB(t *testing.T) {
	testlab.Require(t)
	for _, tc := range []struct {
		name string
		port int
		opts map[string]any
	}{
		{"direct 445", testlab.SMBPort, nil},
		{"netbios session 139", testlab.NetBIOSSessPort, nil},
		{"netbios session asked for on 445", testlab.SMBPort, map[string]any{"netbios_session": "always"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := labHinted(t, "smb", tc.port, tc.opts)
			labWant(t, r, probe.OutcomeOK)
			if r.Details[DetailSMBDialect] != "3.1.1" || r.Details[DetailSMBSigning] != "enabled" {
				t.Errorf("details %v, want dialect 3.1.1 with signing enabled", r.Details)
			}
		})
	}
	t.Run("direct SMB on the NetBIOS port", func(t *testing.T) {
		// Samba answers SMB on 139 with or without the session request.
		r := labApp(t, "smb", testlab.NetBIOSSessPort, map[string]any{"netbios_session": "never"}, 5*time.Second)
		labWant(t, r, probe.OutcomeOK)
	})
	t.Run("http server is no smb server", func(t *testing.T) {
		r := labApp(t, "smb", testlab.HTTPPort, nil, 5*time.Second)
		labWant(t, r, probe.OutcomeProtocolError)
	})
}

// TestLabRDP sends xrdp the X.224 connection request.
func TestLabRDP(t *testing.T) {
	testlab.Require(t)
	t.Run("tls or credssp", func(t *testing.T) {
		r := labHinted(t, "rdp", testlab.RDPPort, nil)
		labWant(t, r, probe.OutcomeOK)
		if r.Details[DetailRDPProtocol] != "tls" {
			t.Errorf("details %v, want tls (xrdp has no CredSSP)", r.Details)
		}
	})
	t.Run("standard rdp security", func(t *testing.T) {
		r := labApp(t, "rdp", testlab.RDPPort, map[string]any{"protocols": []any{}}, 5*time.Second)
		labWant(t, r, probe.OutcomeOK)
		if r.Details[DetailRDPProtocol] != "rdp" {
			t.Errorf("details %v", r.Details)
		}
	})
	t.Run("vnc server is no rdp server", func(t *testing.T) {
		r := labApp(t, "rdp", testlab.VNCPort, nil, 5*time.Second)
		labWant(t, r, probe.OutcomeProtocolError)
	})
}

// TestLabVNC reads TigerVNC's protocol version.
func TestLabVNC(t *testing.T) {
	testlab.Require(t)
	r := labHinted(t, "vnc", testlab.VNCPort, map[string]any{"expect": `^3\.8$`})
	labWant(t, r, probe.OutcomeOK)
	if r.Details[DetailRFBVersion] != "3.8" {
		t.Errorf("details %v", r.Details)
	}
	t.Run("ftp server is no vnc server", func(t *testing.T) {
		r := labApp(t, "vnc", testlab.FTPPort, nil, 5*time.Second)
		labWant(t, r, probe.OutcomeProtocolError)
	})
}

// TestLabRMI opens a JRMP connection to the JDK's rmiregistry, which tells
// the check the address it sees it at.
func TestLabRMI(t *testing.T) {
	testlab.Require(t)
	r := labHinted(t, "rmi", testlab.RMIPort, nil)
	labWant(t, r, probe.OutcomeOK)
	if !strings.HasPrefix(r.Details[DetailRMISeenAs], testlab.ClientAddr+":") {
		t.Errorf("details %v, want the host's lab address %s", r.Details, testlab.ClientAddr)
	}
	t.Run("ftp server is no rmi server", func(t *testing.T) {
		r := labApp(t, "rmi", testlab.FTPPort, nil, 5*time.Second)
		labWant(t, r, probe.OutcomeProtocolError)
	})
	t.Run("smb server waits for more", func(t *testing.T) {
		// smbd reads on for a whole message: connected, then silence.
		r := labApp(t, "rmi", testlab.SMBPort, nil, time.Second)
		labWant(t, r, probe.OutcomeServiceTimeout)
	})
}

// TestLabWinRM runs the check catalog winrm flows get against the lab's
// stand-in for a WinRM listener, in plain HTTP and over TLS.
func TestLabWinRM(t *testing.T) {
	testlab.Require(t)
	t.Run("5985", func(t *testing.T) {
		r := labHinted(t, "winrm", testlab.WinRMPort, nil)
		labWant(t, r, probe.OutcomeOK)
		if r.Values[ValueHTTPStatus] != 405 {
			t.Errorf("values %v", r.Values)
		}
	})
	t.Run("5986", func(t *testing.T) {
		r := labHinted(t, "winrm", testlab.WinRMSPort, map[string]any{"tls": labTLS()})
		labWant(t, r, probe.OutcomeOK)
		if r.Values[ValueHTTPStatus] != 405 || r.Details["tls_version"] == "" {
			t.Errorf("values %v details %v", r.Values, r.Details)
		}
	})
	t.Run("5986 without the CA", func(t *testing.T) {
		r := labHinted(t, "winrm", testlab.WinRMSPort, nil)
		labWant(t, r, probe.OutcomeTLSError)
	})
}

// TestLabRemoteFirewall proves that each firewall action ends each of the
// checks above in the outcome that names it, before the service is asked.
func TestLabRemoteFirewall(t *testing.T) {
	testlab.Require(t)
	for _, k := range []struct {
		app  string
		port int
	}{
		{"ftp", testlab.FTPPort}, {"smtp", testlab.SMTPPort}, {"smb", testlab.SMBPort},
		{"smb", testlab.NetBIOSSessPort}, {"rdp", testlab.RDPPort}, {"vnc", testlab.VNCPort},
		{"rmi", testlab.RMIPort}, {"winrm", testlab.WinRMPort},
	} {
		for _, fw := range []struct {
			action testlab.Action
			want   probe.Outcome
		}{
			{testlab.Drop, probe.OutcomeTimeout},
			{testlab.RejectTCPReset, probe.OutcomeRefused},
			{testlab.RejectAdminProhib, probe.OutcomeUnreachable},
		} {
			t.Run(fmt.Sprintf("%s %d/%s", k.app, k.port, fw.action), func(t *testing.T) {
				testlab.Firewall(t, "tcp", k.port, fw.action)
				labWant(t, labBound(t, k.app, probe.TCP, k.port, nil, time.Second), fw.want)
			})
		}
	}
}
