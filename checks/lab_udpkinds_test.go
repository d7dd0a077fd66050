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

// labBound runs the check a catalog flow with app hint app over proto gets,
// with the hint's options plus extra, against the lab server's port.
func labBound(t *testing.T, app string, proto probe.Protocol, port int, extra map[string]any, timeout time.Duration) probe.Result {
	t.Helper()
	kind, opts := Binder{}.KindFor(app, proto)
	if opts == nil {
		opts = map[string]any{}
	}
	for k, v := range extra {
		opts[k] = v
	}
	return labApp(t, kind, port, opts, timeout)
}

// TestLabRPC calls rpcbind's NULL procedure as catalog rpcbind flows do.
func TestLabRPC(t *testing.T) {
	testlab.Require(t)
	for _, proto := range []probe.Protocol{probe.UDP, probe.TCP} {
		t.Run(string(proto), func(t *testing.T) {
			r := labBound(t, "rpcbind", proto, testlab.RPCBindPort, nil, 3*time.Second)
			labWant(t, r, probe.OutcomeOK)
			if r.Details["rpc_program"] != "100000 v2" {
				t.Errorf("details %v", r.Details)
			}
		})
	}
	t.Run("rpcbind version 4", func(t *testing.T) {
		labWant(t, labApp(t, "rpc", testlab.RPCBindPort, map[string]any{"version": 4}, 3*time.Second), probe.OutcomeOK)
	})
	t.Run("rpcbind version 5", func(t *testing.T) {
		r := labApp(t, "rpc", testlab.RPCBindPort, map[string]any{"version": 5}, 3*time.Second)
		labWant(t, r, probe.OutcomeProtocolError)
		if !strings.HasPrefix(r.Details[probe.DetailReason], "PROG_MISMATCH") {
			t.Errorf("reason %q", r.Details[probe.DetailReason])
		}
	})
	t.Run("NFS is not there", func(t *testing.T) {
		// Program 100003 at rpcbind's own port: rpcbind serves only itself.
		r := labApp(t, "rpc", testlab.RPCBindPort, map[string]any{"program": 100003, "version": 3}, 3*time.Second)
		labWant(t, r, probe.OutcomeProtocolError)
		if !strings.HasPrefix(r.Details[probe.DetailReason], "PROG_UNAVAIL") {
			t.Errorf("reason %q", r.Details[probe.DetailReason])
		}
	})
}

// TestLabNetBIOSNS asks nmbd for its name table.
func TestLabNetBIOSNS(t *testing.T) {
	testlab.Require(t)
	r := labBound(t, "netbios-ns", probe.UDP, testlab.NetBIOSNamePort, map[string]any{"name": strings.ToLower(testlab.NetBIOSName)}, 3*time.Second)
	labWant(t, r, probe.OutcomeOK)
	if !strings.Contains(r.Details["netbios_names"], testlab.NetBIOSName+"<00>") {
		t.Errorf("details %v", r.Details)
	}
	t.Run("a name the node does not have", func(t *testing.T) {
		r := labApp(t, "netbios-ns", testlab.NetBIOSNamePort, map[string]any{"name": "FS1"}, 3*time.Second)
		labWant(t, r, probe.OutcomeProtocolError)
		if r.Details[probe.DetailReason] != "the node does not have the name FS1" {
			t.Errorf("reason %q", r.Details[probe.DetailReason])
		}
	})
}

// TestLabSSDP searches minissdpd for the lab's device.
func TestLabSSDP(t *testing.T) {
	testlab.Require(t)
	for _, st := range []string{"ssdp:all", testlab.SSDPSearchTarget} {
		t.Run(st, func(t *testing.T) {
			r := labBound(t, "ssdp", probe.UDP, testlab.SSDPPort, map[string]any{"search_target": st}, 3*time.Second)
			labWant(t, r, probe.OutcomeOK)
			if r.Details["st"] != testlab.SSDPSearchTarget || !strings.HasSuffix(r.Details["usn"], "::"+testlab.SSDPSearchTarget) {
				t.Errorf("details %v", r.Details)
			}
		})
	}
	t.Run("a device that is not there", func(t *testing.T) {
		r := labApp(t, "ssdp", testlab.SSDPPort, map[string]any{"search_target": "urn:schemas-upnp-org:device:Printer:1"}, time.Second)
		labWant(t, r, probe.OutcomeNoResponse)
	})
}

// TestLabKerberos sends the MIT KDC an AS-REQ, over udp and tcp.
func TestLabKerberos(t *testing.T) {
	testlab.Require(t)
	for _, proto := range []probe.Protocol{probe.UDP, probe.TCP} {
		t.Run(string(proto)+" unknown principal", func(t *testing.T) {
			r := labBound(t, "kerberos", proto, testlab.KerberosPort, map[string]any{"realm": testlab.KerberosRealm}, 3*time.Second)
			labWant(t, r, probe.OutcomeOK)
			if r.Details["kerberos_reply"] != "KRB-ERROR" || r.Details["kerberos_error"] != "KDC_ERR_C_PRINCIPAL_UNKNOWN" {
				t.Errorf("details %v", r.Details)
			}
		})
	}
	t.Run("a principal without pre-authentication", func(t *testing.T) {
		r := labApp(t, "kerberos", testlab.KerberosPort, map[string]any{
			"realm": testlab.KerberosRealm, "principal": testlab.KerberosUser,
		}, 3*time.Second)
		labWant(t, r, probe.OutcomeOK)
		if r.Details["kerberos_reply"] != "AS-REP" {
			t.Errorf("details %v", r.Details)
		}
	})
	t.Run("default realm of an address", func(t *testing.T) {
		r := labApp(t, "kerberos", testlab.KerberosPort, nil, 3*time.Second)
		labWant(t, r, probe.OutcomeOK)
		if r.Details["kerberos_reply"] != "KRB-ERROR" {
			t.Errorf("details %v", r.Details)
		}
	})
}

// TestLabUDPKindsFirewall proves that each firewall action ends each of the
// checks above in the outcome that names it: over UDP a DROP is silence
// (no_response), over TCP a timeout before connect.
func TestLabUDPKindsFirewall(t *testing.T) {
	testlab.Require(t)
	type fwCase struct {
		action testlab.Action
		want   probe.Outcome
	}
	udp := []fwCase{
		{testlab.Drop, probe.OutcomeNoResponse},
		{testlab.RejectPortUnreach, probe.OutcomeRefused},
		{testlab.RejectAdminProhib, probe.OutcomeUnreachable},
	}
	tcp := []fwCase{
		{testlab.Drop, probe.OutcomeTimeout},
		{testlab.RejectTCPReset, probe.OutcomeRefused},
		{testlab.RejectAdminProhib, probe.OutcomeUnreachable},
	}
	for _, k := range []struct {
		app   string
		proto probe.Protocol
		port  int
		extra map[string]any
	}{
		{"rpcbind", probe.UDP, testlab.RPCBindPort, nil},
		{"rpcbind", probe.TCP, testlab.RPCBindPort, nil},
		{"netbios-ns", probe.UDP, testlab.NetBIOSNamePort, nil},
		{"ssdp", probe.UDP, testlab.SSDPPort, map[string]any{"search_target": testlab.SSDPSearchTarget}},
		{"kerberos", probe.UDP, testlab.KerberosPort, map[string]any{"realm": testlab.KerberosRealm}},
		{"kerberos", probe.TCP, testlab.KerberosPort, map[string]any{"realm": testlab.KerberosRealm}},
	} {
		cases := udp
		if k.proto == probe.TCP {
			cases = tcp
		}
		for _, fw := range cases {
			t.Run(fmt.Sprintf("%s %s %d/%s", k.app, k.proto, k.port, fw.action), func(t *testing.T) {
				testlab.Firewall(t, string(k.proto), k.port, fw.action)
				r := labBound(t, k.app, k.proto, k.port, k.extra, time.Second)
				labWant(t, r, fw.want)
			})
		}
	}
}
