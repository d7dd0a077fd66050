//go:build lab

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/flowprobe/flowprobe/deploy/testlab"
	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/probe/report"
)

// adFlows are the catalog flows towards Active Directory that a site
// binding the DC's roles to the lab's DC plans, by product.
var adFlows = map[string][]string{
	"xenserver": {
		"ad-int-dns-tcp", "ad-int-dns-udp", "ad-int-global-catalog", "ad-int-kerberos-tcp",
		"ad-int-kerberos-udp", "ad-int-kpasswd-tcp", "ad-int-kpasswd-udp", "ad-int-ldap-tcp",
		"ad-int-ldap-udp", "ad-int-ldaps-tcp", "ad-int-netbios-ns", "ad-int-netbios-session",
		"ad-int-ntp", "ad-int-smb", "ad-ldap-tcp", "ad-ldap-udp", "ad-ldaps",
	},
	"citrix-app-layering": {
		"ad-ldap", "ad-ldaps", "key-ad-ldap", "key-ad-ldaps", "key-ad-dns-udp", "key-ad-dns-tcp",
	},
}

// adPorts are the ports of those flows, for the firewall rules.
var adPorts = map[string][]int{
	"tcp": {53, 88, 139, 389, 445, 464, 636, 3268},
	"udp": {53, 88, 123, 137, 389, 464},
}

// adSite writes a site config of XenServer (self: xenserver-host) and
// Citrix App Layering (self: appliance) whose Active Directory roles are
// the lab's DC; with deny, every flow is expected to be blocked.
func adSite(t *testing.T, dc *testlab.ADDC, deny bool) string {
	t.Helper()
	// The options a real site gives for AD: the domain's SRV record, the
	// realm, a bind account over StartTLS or LDAPS, the DC's NetBIOS name.
	roleOptions := fmt.Sprintf(`
        options:
          dns: {name: %s, type: SRV}
          kerberos: {realm: %s}
          kpasswd: {realm: %s}
          netbios-ns: {name: %s}
          ldap:
            mode: starttls
            bind_dn: %q
            password_file: %q
            tls: {ca_file: %q, server_name: %s}`,
		testlab.ADSRV, testlab.ADRealm, testlab.ADRealm, testlab.ADHostName,
		testlab.ADAdminDN, dc.PasswordFile, dc.CAFile, testlab.ADHost)
	flow := func(id, options string) string {
		s := "      " + id + ":\n"
		if options != "" {
			s += "        options: " + options + "\n"
		}
		if deny {
			s += "        expect: deny\n"
		}
		return s
	}
	var x, cal strings.Builder
	ldaps, gc := "{mode: ldaps}", fmt.Sprintf("{base_dn: %q, filter: (sAMAccountName=Administrator)}", testlab.ADBaseDN)
	for _, id := range adFlows["xenserver"] {
		switch id {
		case "ad-int-ldaps-tcp", "ad-ldaps":
			x.WriteString(flow(id, ldaps))
		case "ad-int-global-catalog":
			x.WriteString(flow(id, gc))
		default:
			x.WriteString(flow(id, ""))
		}
	}
	for _, id := range adFlows["citrix-app-layering"] {
		if strings.HasSuffix(id, "ldaps") {
			cal.WriteString(flow(id, ldaps))
		} else {
			cal.WriteString(flow(id, ""))
		}
	}
	site := fmt.Sprintf(`site: ad-lab
defaults:
  timeout: 2s
products:
  - name: xenserver
    self: xenserver-host
    # LDAPS runs over TCP only; the document's UDP 636 row stays in the
    # firewall request.
    request_only: [ad-int-ldaps-udp]
    roles:
      domain-controller:
        hosts: [%s]%s
    flows:
%s  - name: citrix-app-layering
    self: appliance
    only: [%s]
    roles:
      active-directory:
        hosts: [%s]%s
    flows:
%s`, testlab.ADAddr, roleOptions, x.String(), strings.Join(adFlows["citrix-app-layering"], ", "),
		testlab.ADAddr, roleOptions, cal.String())
	path := filepath.Join(t.TempDir(), "site.yml")
	if err := os.WriteFile(path, []byte(site), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// adCheck runs `flowprobe check -o json` from the DC's client namespace and
// returns the reports by product/flow and the exit code.
func adCheck(t *testing.T, dc *testlab.ADDC, site string) (map[string]report.Result, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), labRun)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd := dc.Command(ctx, flowprobeBin, "check", "--config.file", site, "-o", "json", "--progress", "never")
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("flowprobe check did not end within %s", labRun)
	}
	code := cmd.ProcessState.ExitCode()
	if err != nil && code < 0 {
		t.Fatalf("flowprobe check: %v", err)
	}
	var reps []report.Result
	if err := json.Unmarshal(out.Bytes(), &reps); err != nil {
		t.Fatalf("JSON report (exit %d): %v\n%s%s", code, err, out.String(), errOut.String())
	}
	got := map[string]report.Result{}
	for _, r := range reps {
		got[r.Product+"/"+r.Flow] = r
	}
	var want []string
	for product, ids := range adFlows {
		for _, id := range ids {
			want = append(want, product+"/"+id)
			if _, ok := got[product+"/"+id]; !ok {
				t.Errorf("no report for %s/%s", product, id)
			}
		}
	}
	if len(got) != len(want) {
		var keys []string
		for k := range got {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		t.Errorf("%d reports (%v), want %d", len(got), keys, len(want))
	}
	return got, code
}

// TestADDCCheck runs `flowprobe check` with the XenServer and Citrix App
// Layering AD flows bound to a Samba AD DC of the test's own: every flow
// passes on the open path; behind DROP rules each one fails with a path
// outcome, and behind REJECT rules, expected blocked, each one passes.
func TestADDCCheck(t *testing.T) {
	dc := testlab.NewADDC(t)

	t.Run("open", func(t *testing.T) {
		got, code := adCheck(t, dc, adSite(t, dc, false))
		for k, r := range got {
			if r.Outcome != probe.OutcomeOK || !r.Success {
				t.Errorf("%s (%s %s/%d): %s %s; details %v", k, r.Check, r.Protocol, r.Port, r.Outcome, r.Error, r.Details)
			}
		}
		if code != exitOK {
			t.Errorf("exit %d, want %d", code, exitOK)
		}
		for _, k := range []string{"xenserver/ad-int-global-catalog", "xenserver/ad-int-ldaps-tcp", "citrix-app-layering/key-ad-ldaps"} {
			if got[k].Details["bind"] != testlab.ADAdminDN {
				t.Errorf("%s: bind %q, want %s", k, got[k].Details["bind"], testlab.ADAdminDN)
			}
		}
	})

	t.Run("drop", func(t *testing.T) {
		adBlockAll(t, dc, testlab.Drop, testlab.Drop)
		got, code := adCheck(t, dc, adSite(t, dc, false))
		for k, r := range got {
			// UDP kinds that cannot tell a filter from silence say no_response.
			if r.Success || (r.Outcome != probe.OutcomeTimeout && r.Outcome != probe.OutcomeNoResponse) {
				t.Errorf("%s (%s %s/%d): %s, success %v; want a failing timeout or no_response", k, r.Check, r.Protocol, r.Port, r.Outcome, r.Success)
			}
		}
		if code != exitFailed {
			t.Errorf("exit %d, want %d", code, exitFailed)
		}
	})

	t.Run("reject, expected blocked", func(t *testing.T) {
		adBlockAll(t, dc, testlab.RejectTCPReset, testlab.RejectPortUnreach)
		got, code := adCheck(t, dc, adSite(t, dc, true))
		for k, r := range got {
			if r.Outcome != probe.OutcomeRefused || !r.Success || r.Details["bind"] != "" {
				t.Errorf("%s (%s %s/%d): %s, success %v, details %v; want a passing refused, no bind", k, r.Check, r.Protocol, r.Port, r.Outcome, r.Success, r.Details)
			}
		}
		if code != exitOK {
			t.Errorf("exit %d, want %d", code, exitOK)
		}
	})
}

func adBlockAll(t *testing.T, dc *testlab.ADDC, tcp, udp testlab.Action) {
	t.Helper()
	for proto, ports := range adPorts {
		action := tcp
		if proto == "udp" {
			action = udp
		}
		for _, p := range ports {
			dc.Block(t, proto, p, action)
		}
	}
}
