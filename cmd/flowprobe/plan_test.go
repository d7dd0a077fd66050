package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"github.com/prometheus/common/version"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/flowprobe/flowprobe/probe/site"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// Every shipped example is a valid config for the shipped catalog.
func TestValidateExamples(t *testing.T) {
	t.Setenv("FLOWPROBE_AD_PASSWORD", "example")
	files, err := filepath.Glob("../../deploy/examples/*.yml")
	if err != nil || len(files) != 4 {
		t.Fatalf("examples %v (%v), want 4", files, err)
	}
	code, stdout, stderr := runCLI(t, append([]string{"validate"}, files...)...)
	if code != exitOK || stderr != "" {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != len(files) {
		t.Fatalf("stdout:\n%s", stdout)
	}
	for i, f := range files {
		if !strings.HasPrefix(lines[i], f+": OK (") {
			t.Errorf("line %d: %q", i, lines[i])
		}
	}
}

func TestValidateErrors(t *testing.T) {
	code, stdout, stderr := runCLI(t, "validate", "--config.file", "testdata/plan-sios.yml", "testdata/bad.yml", "testdata/bad-plan.yml")
	if code != exitUsage {
		t.Errorf("exit %d, want %d", code, exitUsage)
	}
	if stdout != "testdata/plan-sios.yml: OK (3 targets, 5 skipped)\n" {
		t.Errorf("stdout %q", stdout)
	}
	want := `testdata/bad.yml: FAILED
testdata/bad.yml:4: product sios-lifekeeper: interval "soon" is not a duration such as 30s or 1m
testdata/bad.yml:8: product sios-lifekeeper: role node: unknown key "password" in a role (known: check, hosts, interval, options, ports, ranges, responder, timeout)
testdata/bad-plan.yml: FAILED
testdata/bad-plan.yml:3: product sios-lifekeeper: self: unknown role "nodes" (roles of sios-lifekeeper: api-client, gui-client, node, ping-target, web-client)
`
	if stderr != want {
		t.Errorf("stderr:\n%s\nwant:\n%s", stderr, want)
	}

	if code, _, stderr := runCLI(t, "validate"); code != exitUsage || !strings.Contains(stderr, "no config file given") {
		t.Errorf("no files: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := runCLI(t, "validate", "testdata/missing.yml"); code != exitUsage || !strings.Contains(stderr, "testdata/missing.yml: FAILED\nload config: open testdata/missing.yml: no such file or directory") {
		t.Errorf("missing file: exit %d, stderr %q", code, stderr)
	}
}

func TestPlanTable(t *testing.T) {
	code, stdout, stderr := runCLI(t, "plan", "testdata/plan-sios.yml")
	if code != exitOK || stderr != "" {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
	want := `PRODUCT          FLOW              SOURCE  DESTINATION  ADDRESS     PORT   PROTOCOL  CHECK  INTERVAL  TIMEOUT  EXPECT  REQUIRED
sios-lifekeeper  comm-path         node    node         192.0.2.42  7365   tcp       tcp    15s       3s       allow   conditional
sios-lifekeeper  data-replication  node    node         192.0.2.42  10001  tcp       tcp    15s       3s       allow   conditional
sios-lifekeeper  lkping            node    node         192.0.2.42  -      icmp      icmp   15s       3s       deny    conditional

3 targets. Not checked:

PRODUCT          FLOW              SOURCE      DESTINATION  HOST        PORT         CODE          REASON
sios-lifekeeper  comm-path         node        node         192.0.2.41  -            own_host      192.0.2.41 is one of self_addresses
sios-lifekeeper  web-gui           web-client  node         -           -            other_source  source role web-client is not this instance's role (self: node); the instance running as web-client checks it
sios-lifekeeper  data-replication  node        node         192.0.2.41  -            own_host      192.0.2.41 is one of self_addresses
sios-lifekeeper  data-replication  node        node         -           10001-65535  range_rest    only the first port 10001 of the range is checked (ranges: first)
sios-lifekeeper  lkping            node        node         192.0.2.41  -            own_host      192.0.2.41 is one of self_addresses
`
	if stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout, want)
	}
}

func TestPlanJSON(t *testing.T) {
	code, stdout, stderr := runCLI(t, "plan", "--config.file", "testdata/plan-sios.yml", "--format", "json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var out struct {
		Targets []struct {
			ID              string  `json:"id"`
			Check           string  `json:"check"`
			IntervalSeconds float64 `json:"interval_seconds"`
			TimeoutSeconds  float64 `json:"timeout_seconds"`
			Expect          string  `json:"expect"`
		} `json:"targets"`
		Skipped []site.Skip `json:"skipped"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tg := range out.Targets {
		got = append(got, tg.ID+" "+tg.Expect)
		if tg.IntervalSeconds != 15 || tg.TimeoutSeconds != 3 {
			t.Errorf("%s: interval %g timeout %g", tg.ID, tg.IntervalSeconds, tg.TimeoutSeconds)
		}
	}
	want := []string{
		"sios-lifekeeper/comm-path/192.0.2.42:7365/tcp/tcp allow",
		"sios-lifekeeper/data-replication/192.0.2.42:10001/tcp/tcp allow",
		"sios-lifekeeper/lkping/192.0.2.42/icmp/icmp deny",
	}
	if !slices.Equal(got, want) {
		t.Errorf("targets %q, want %q", got, want)
	}
	if len(out.Skipped) == 0 || out.Skipped[0].Code != site.SkipOwnHost || out.Skipped[0].Host != "192.0.2.41" {
		t.Errorf("skipped %+v", out.Skipped)
	}
}

// The firewall request lists both directions, keeps ranges whole, marks
// expect: deny flows, and uses real addresses where the config knows them.
func TestPlanFirewallCSV(t *testing.T) {
	code, stdout, stderr := runCLI(t, "plan", "testdata/plan-sios.yml", "--firewall", "--format", "csv")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.HasPrefix(stdout, "# Firewall request for site ") || !strings.Contains(stdout, "\n# Not checked by this instance") {
		t.Errorf("no header or not-checked comments:\n%s", stdout)
	}
	r := csv.NewReader(strings.NewReader(stdout))
	r.Comment = '#'
	records, err := r.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	header := "action,source,destination,protocol,ports,product,flow,source_role,destination_role,required,condition,purpose,note"
	if got := strings.Join(records[0], ","); got != header {
		t.Fatalf("header %q", got)
	}
	var got []string
	for _, r := range records[1:] {
		got = append(got, strings.Join(r[:5], " ")+" "+r[6])
	}
	want := []string{
		"allow 192.0.2.41 192.0.2.42 tcp 7365 comm-path",
		"allow 192.0.2.42 192.0.2.41 tcp 7365 comm-path",
		"allow 198.51.100.40 192.0.2.41 tcp 778 web-gui",
		"allow 198.51.100.40 192.0.2.42 tcp 778 web-gui",
		"allow 192.0.2.41 192.0.2.42 tcp 10001-65535 data-replication",
		"allow 192.0.2.42 192.0.2.41 tcp 10001-65535 data-replication",
		"deny 192.0.2.41 192.0.2.42 icmp echo-request (type 8; IPv6 128), echo-reply back (type 0; IPv6 129) lkping",
		"deny 192.0.2.42 192.0.2.41 icmp echo-request (type 8; IPv6 128), echo-reply back (type 0; IPv6 129) lkping",
	}
	if !slices.Equal(got, want) {
		t.Errorf("rules:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestPlanFirewallMarkdown(t *testing.T) {
	code, stdout, stderr := runCLI(t, "plan", "testdata/plan-sios.yml", "--firewall", "--output", "markdown")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"# Firewall request for site (no site name in the config)\n\n- Generated ",
		"by flowprobe " + version.Version + " from testdata/plan-sios.yml\n- Product sios-lifekeeper: SIOS LifeKeeper for Linux (sios-lifekeeper-ports.ja.txt)\n\n",
		"| ACTION | SOURCE | DESTINATION | PROTOCOL | PORTS | PRODUCT | FLOW | SOURCE_ROLE | DESTINATION_ROLE | REQUIRED | CONDITION | PURPOSE | NOTE |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
		"| allow | 192.0.2.41 | 192.0.2.42 | tcp | 7365 | sios-lifekeeper | comm-path | node | node | conditional | A cluster of two or more nodes",
		"| deny | 192.0.2.41 | 192.0.2.42 | icmp | echo-request (type 8; IPv6 128), echo-reply back (type 0; IPv6 129) |",
		"\n## Not checked by this instance",
		"| sios-lifekeeper | web-gui | web-client | node |  |  | other_source |",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("request lacks %q:\n%s", want, stdout)
		}
	}
}

// Roles without hosts appear as <role> placeholders, escaped in Markdown.
func TestPlanFirewallPlaceholders(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "bare.yml")
	writeFile(t, cfg, "products: [sios-lifekeeper]\n")
	code, stdout, stderr := runCLI(t, "plan", cfg, "--firewall", "--format", "markdown")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "| allow | &lt;node&gt; | &lt;node&gt; | tcp | 7365 | sios-lifekeeper | comm-path |") {
		t.Errorf("no placeholder rule for comm-path:\n%s", stdout)
	}
	if !strings.Contains(stdout, "| tcp | ephemeral | sios-lifekeeper | gui-rmi-to-node, gui-rmi-to-node-no-xfwd |") {
		t.Errorf("ephemeral ports not kept:\n%s", stdout)
	}
	// The GUI ports are listed in two sections of the table: one rule each,
	// naming both flows.
	if n := strings.Count(stdout, "| tcp | 81 |"); n != 1 {
		t.Errorf("%d rules for the GUI's port 81, want 1:\n%s", n, stdout)
	}
	if !strings.Contains(stdout, "| tcp | 81 | sios-lifekeeper | gui-server-81, gui-81-no-xfwd |") {
		t.Errorf("the merged rule does not name both flows:\n%s", stdout)
	}
}

func TestPlanUsage(t *testing.T) {
	for _, args := range [][]string{
		{"plan"},
		{"plan", "--config.file", "a.yml", "b.yml"},
		{"plan", "testdata/plan-sios.yml", "--format", "yaml"},
	} {
		if code, _, _ := runCLI(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
	code, stdout, stderr := runCLI(t, "plan", "testdata/bad.yml")
	if code != exitUsage || stdout != "" || !strings.HasPrefix(stderr, "testdata/bad.yml:4: ") {
		t.Errorf("bad config: exit %d stdout %q stderr %q", code, stdout, stderr)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
