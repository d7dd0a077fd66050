//go:build lab

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowprobe/flowprobe/deploy/testlab"
	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/probe/report"
)

// flowprobeBin is the flowprobe binary the lab tests run as a subprocess,
// so that exit codes, signals and output streams are the real ones.
var flowprobeBin string

func TestMain(m *testing.M) { os.Exit(labMain(m)) }

func labMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "flowprobe-lab-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	flowprobeBin = filepath.Join(dir, "flowprobe")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// go test puts its own go first in PATH.
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", flowprobeBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build flowprobe: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// labRun bounds one flowprobe run; a run that hangs fails the test.
const labRun = time.Minute

// runFlowprobe runs the binary to its end and returns its output and exit code.
func runFlowprobe(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), labRun)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, flowprobeBin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("flowprobe %s did not end within %s:\n%s%s", strings.Join(args, " "), labRun, out.String(), errOut.String())
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("flowprobe %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errOut.String(), code
}

// labFlows are the site's own flows towards the lab server, one per
// service, in the config's order.
var labFlows = []struct {
	id, proto string
	port      int
	app       string
	check     string // the kind the plan must pick
	options   string // the flow's own options, YAML flow style
}{
	{"lab-ssh", "tcp", testlab.SSHPort, "ssh", "ssh", ""},
	{"lab-https", "tcp", testlab.HTTPSPort, "https", "tls", fmt.Sprintf("{ca_file: %q, server_name: %s}", testlab.File("ca.pem"), testlab.ServerName)},
	{"lab-ldap", "tcp", testlab.LDAPPort, "ldap", "ldap", ""},
	{"lab-ntp", "udp", testlab.NTPPort, "ntp", "ntp", ""},
	{"lab-dns", "udp", testlab.DNSPort, "dns", "dns", ""},
	{"lab-iscsi", "tcp", testlab.ISCSIPort, "iscsi", "iscsi", ""},
	{"lab-snmp", "udp", testlab.SNMPPort, "snmp", "snmp", ""},
	{"lab-icmp", "icmp", 0, "", "icmp", ""},
}

// labSite writes a site config whose extra flows reach every lab service
// from this host; the flows named in optional are marked optional.
func labSite(t *testing.T, optional ...string) string {
	t.Helper()
	dir := t.TempDir()
	community := filepath.Join(dir, "community")
	if err := os.WriteFile(community, []byte(testlab.SNMPCommunity), 0o600); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	var ids []string
	for _, f := range labFlows {
		ids = append(ids, f.id)
	}
	fmt.Fprintf(&b, `site: lab
products:
  - name: sios-lifekeeper
    self: node
    only: [%s]
    timeout: 2s
    roles:
      lab:
        hosts: [%s]
        options:
          dns: {name: %s}
          snmp: {community_file: %q}
    extra_flows:
`, strings.Join(ids, ", "), testlab.ServerAddr, testlab.DNSA, community)
	for _, f := range labFlows {
		fmt.Fprintf(&b, "      - id: %s\n        source: node\n        destination: lab\n        protocol: %s\n", f.id, f.proto)
		if f.port != 0 {
			fmt.Fprintf(&b, "        ports: %d\n", f.port)
		}
		if f.app != "" {
			fmt.Fprintf(&b, "        app: %s\n", f.app)
		}
		if f.options != "" {
			fmt.Fprintf(&b, "        options: %s\n", f.options)
		}
		for _, o := range optional {
			if o == f.id {
				b.WriteString("        required: optional\n")
			}
		}
	}
	path := filepath.Join(dir, "site.yml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// jsonReports parses `check --output json`, checks that every object
// carries the fields other tools read, and indexes the reports by flow.
func jsonReports(t *testing.T, stdout string) map[string]report.Result {
	t.Helper()
	var raw []map[string]any
	if err := json.Unmarshal([]byte(stdout), &raw); err != nil {
		t.Fatalf("JSON report: %v\n%s", err, stdout)
	}
	for _, r := range raw {
		for _, k := range []string{"flow", "product", "source", "destination", "target", "protocol", "check", "outcome", "success", "duration_seconds", "error"} {
			if _, ok := r[k]; !ok {
				t.Errorf("report of %v lacks %q", r["flow"], k)
			}
		}
		if _, ok := r["duration_seconds"].(float64); !ok {
			t.Errorf("report of %v: duration_seconds %v is not a number", r["flow"], r["duration_seconds"])
		}
		// icmp has no port; every tcp and udp report names its port.
		if _, ok := r["port"]; ok == (r["protocol"] == "icmp") {
			t.Errorf("report of %v (%v): port present = %v", r["flow"], r["protocol"], ok)
		}
	}
	var reps []report.Result
	if err := json.Unmarshal([]byte(stdout), &reps); err != nil {
		t.Fatal(err)
	}
	byFlow := map[string]report.Result{}
	for _, r := range reps {
		if _, dup := byFlow[r.Flow]; dup {
			t.Errorf("flow %s reported twice", r.Flow)
		}
		byFlow[r.Flow] = r
	}
	return byFlow
}

// wantLabReports checks every lab flow's report: what was checked, and
// the outcome (ok unless failing names another).
func wantLabReports(t *testing.T, byFlow map[string]report.Result, failing map[string]probe.Outcome) {
	t.Helper()
	if len(byFlow) != len(labFlows) {
		t.Errorf("%d reports, want %d", len(byFlow), len(labFlows))
	}
	for _, f := range labFlows {
		r, ok := byFlow[f.id]
		if !ok {
			t.Errorf("no report for %s", f.id)
			continue
		}
		target := testlab.ServerAddr
		if f.port != 0 {
			target = testlab.Addr(f.port)
		}
		if r.Product != "sios-lifekeeper" || r.Source != "node" || r.Destination != "lab" || r.Target != target ||
			string(r.Protocol) != f.proto || r.Port != f.port || r.Check != f.check {
			t.Errorf("%s: product=%s source=%s destination=%s target=%s protocol=%s port=%d check=%s, want target %s %s/%d check %s",
				f.id, r.Product, r.Source, r.Destination, r.Target, r.Protocol, r.Port, r.Check, target, f.proto, f.port, f.check)
		}
		want, fails := failing[f.id]
		if !fails {
			want = probe.OutcomeOK
		}
		if r.Outcome != want || r.Success == fails || (r.Error != "") != fails {
			t.Errorf("%s: outcome=%s success=%v error=%q, want %s", f.id, r.Outcome, r.Success, r.Error, want)
		}
	}
}

// TestLabCheckServices checks one flow per lab service with the check the
// app hint picks: every one passes and the run exits 0.
func TestLabCheckServices(t *testing.T) {
	testlab.Require(t)
	site := labSite(t)
	stdout, stderr, code := runFlowprobe(t, "check", "--config.file", site, "--output", "json")
	if code != exitOK {
		t.Errorf("exit %d, want 0; stderr:\n%s\nstdout:\n%s", code, stderr, stdout)
	}
	byFlow := jsonReports(t, stdout)
	wantLabReports(t, byFlow, nil)

	// Each check really spoke its protocol with the lab's server.
	for flow, want := range map[string]map[string]string{
		"lab-https": {"tls_subject": "CN=lab.example.org,O=flowprobe lab"},
		"lab-ldap":  {"bind": "anonymous", "mode": "plain"},
		"lab-ntp":   {"ntp_status": "synchronised", "stratum": "8"},
		"lab-dns":   {"rcode": "NOERROR", "answers": testlab.ServerAddr},
		"lab-snmp":  {"version": "2c"},
		"lab-icmp":  {"sent": "3", "received": "3"},
		"lab-iscsi": {"session_type": "discovery", "status": "0x0000 success", "logout": "ok"},
	} {
		for k, v := range want {
			if got := byFlow[flow].Details[k]; got != v {
				t.Errorf("%s: details[%s] = %q, want %q", flow, k, got, v)
			}
		}
	}
	if b := byFlow["lab-ssh"].Details["banner"]; !strings.HasPrefix(b, "SSH-2.0-OpenSSH") {
		t.Errorf("lab-ssh: banner %q", b)
	}
	if !strings.Contains(stderr, "8 passed, 0 failed, 0 skipped") {
		t.Errorf("summary missing from stderr:\n%s", stderr)
	}
}

// JUnit XML as CI systems read it.
type labJUnit struct {
	XMLName  xml.Name `xml:"testsuites"`
	Tests    int      `xml:"tests,attr"`
	Failures int      `xml:"failures,attr"`
	Skipped  int      `xml:"skipped,attr"`
	Suites   []struct {
		Name     string `xml:"name,attr"`
		Tests    int    `xml:"tests,attr"`
		Failures int    `xml:"failures,attr"`
		Skipped  int    `xml:"skipped,attr"`
		Cases    []struct {
			Name      string `xml:"name,attr"`
			Classname string `xml:"classname,attr"`
			Failure   *struct {
				Type string `xml:"type,attr"`
				Text string `xml:",chardata"`
			} `xml:"failure"`
			Skipped *struct {
				Message string `xml:"message,attr"`
			} `xml:"skipped"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

// runJUnit runs check with a JUnit report into a file and parses it.
func runJUnit(t *testing.T, args ...string) (j labJUnit, stderr string, code int) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "junit.xml")
	stdout, stderr, code := runFlowprobe(t, append(args, "--output", "junit", "--output.file", file)...)
	if stdout != "" {
		t.Errorf("with --output.file nothing goes to stdout, got:\n%s", stdout)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (stderr:\n%s)", err, stderr)
	}
	if err := xml.Unmarshal(b, &j); err != nil {
		t.Fatalf("JUnit report: %v\n%s", err, b)
	}
	if len(j.Suites) != 1 || j.Suites[0].Name != "sios-lifekeeper" {
		t.Fatalf("want one testsuite sios-lifekeeper:\n%s", b)
	}
	return j, stderr, code
}

// TestLabCheckFirewall drops SSH and resets LDAP at the lab's firewall:
// the run reports exactly those two flows, with the outcome each block
// gives, and fails only while they are required.
func TestLabCheckFirewall(t *testing.T) {
	testlab.Require(t)
	testlab.Firewall(t, "tcp", testlab.SSHPort, testlab.Drop)
	testlab.Firewall(t, "tcp", testlab.LDAPPort, testlab.RejectTCPReset)
	failing := map[string]probe.Outcome{"lab-ssh": probe.OutcomeTimeout, "lab-ldap": probe.OutcomeRefused}
	site := labSite(t)

	t.Run("json", func(t *testing.T) {
		stdout, stderr, code := runFlowprobe(t, "check", "--config.file", site, "--output", "json")
		if code != exitFailed {
			t.Errorf("exit %d, want 1; stderr:\n%s", code, stderr)
		}
		byFlow := jsonReports(t, stdout)
		wantLabReports(t, byFlow, failing)
		if e := byFlow["lab-ldap"].Error; !strings.Contains(e, "connection refused") {
			t.Errorf("lab-ldap error %q does not say the connection was refused", e)
		}
		if !strings.Contains(stderr, "6 passed, 2 failed, 0 skipped") {
			t.Errorf("summary missing from stderr:\n%s", stderr)
		}
	})

	t.Run("junit", func(t *testing.T) {
		j, stderr, code := runJUnit(t, "check", "--config.file", site)
		if code != exitFailed {
			t.Errorf("exit %d, want 1; stderr:\n%s", code, stderr)
		}
		s := j.Suites[0]
		if j.Tests != 8 || j.Failures != 2 || j.Skipped != 0 || s.Tests != 8 || s.Failures != 2 || s.Skipped != 0 {
			t.Errorf("testsuites tests=%d failures=%d skipped=%d, testsuite tests=%d failures=%d skipped=%d; want 8, 2, 0",
				j.Tests, j.Failures, j.Skipped, s.Tests, s.Failures, s.Skipped)
		}
		types := map[string]string{}
		for _, c := range s.Cases {
			if c.Classname != "sios-lifekeeper.lab" {
				t.Errorf("case %q: classname %q", c.Name, c.Classname)
			}
			if c.Failure != nil {
				flow, _, _ := strings.Cut(c.Name, " ")
				types[flow] = c.Failure.Type
				if c.Failure.Text == "" {
					t.Errorf("case %q: failure without the error text", c.Name)
				}
			}
		}
		if len(types) != 2 || types["lab-ssh"] != "timeout" || types["lab-ldap"] != "refused" {
			t.Errorf("failure types %v, want lab-ssh timeout and lab-ldap refused", types)
		}
	})

	t.Run("optional", func(t *testing.T) {
		opt := labSite(t, "lab-ssh", "lab-ldap")
		j, stderr, code := runJUnit(t, "check", "--config.file", opt)
		if code != exitOK {
			t.Errorf("exit %d, want 0: only optional flows fail; stderr:\n%s", code, stderr)
		}
		s := j.Suites[0]
		if s.Tests != 8 || s.Failures != 0 || s.Skipped != 2 {
			t.Errorf("testsuite tests=%d failures=%d skipped=%d, want 8, 0, 2", s.Tests, s.Failures, s.Skipped)
		}
		for _, c := range s.Cases {
			flow, _, _ := strings.Cut(c.Name, " ")
			if want := flow == "lab-ssh" || flow == "lab-ldap"; (c.Skipped != nil) != want || c.Failure != nil {
				t.Errorf("case %q: skipped=%v failure=%v", c.Name, c.Skipped, c.Failure)
			}
		}
		if want := "6 passed, 2 failed, 0 skipped (2 of the failures are optional flows and do not fail the run)"; !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
		if _, stderr, code := runFlowprobe(t, "check", "--config.file", opt, "--output", "json", "--fail-optional"); code != exitFailed {
			t.Errorf("exit %d with --fail-optional, want 1; stderr:\n%s", code, stderr)
		}
	})
}
