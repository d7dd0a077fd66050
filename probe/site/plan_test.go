package site

import (
	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/probe/catalog"

	"fmt"
	"testing"
	"time"
)

func planYAML(t *testing.T, src string) *PlanResult {
	t.Helper()
	cfg, err := ParseConfig("site.yml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Plan(loadDemo(t), cfg, fakeBinder{})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func find(res *PlanResult, id string) *probe.Target {
	for i := range res.Targets {
		if res.Targets[i].ID == id {
			return &res.Targets[i]
		}
	}
	return nil
}

// Interval and timeout: flow > role > product > defaults > built-in.
func TestPlanSettingsPrecedence(t *testing.T) {
	base := `
products:
  - name: demo
    self: appliance
%s
    roles:
      dc:
        hosts: [dc1.example.org]
%s
    flows:
      ldap: {%s}
`
	for _, tc := range []struct {
		name              string
		defaults, product string
		role, flow        string
		interval, timeout time.Duration
	}{
		{"built-in", "", "", "", "", DefaultInterval, DefaultTimeout},
		{"defaults", "defaults: {interval: 2m, timeout: 9s}", "", "", "", 2 * time.Minute, 9 * time.Second},
		{"product", "defaults: {interval: 2m, timeout: 9s}", "    interval: 1m\n    timeout: 8s", "", "", time.Minute, 8 * time.Second},
		{"role", "defaults: {interval: 2m}", "    interval: 1m", "        interval: 50s\n        timeout: 7s", "", 50 * time.Second, 7 * time.Second},
		{"flow", "", "    interval: 1m", "        interval: 50s\n        timeout: 7s", "interval: 40s, timeout: 6s", 40 * time.Second, 6 * time.Second},
		{"mixed", "", "    timeout: 4s", "        interval: 50s", "interval: 45s", 45 * time.Second, 4 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := planYAML(t, tc.defaults+fmt.Sprintf(base, tc.product, tc.role, tc.flow))
			tg := find(res, "demo/ldap/dc1.example.org:389/tcp/ldap")
			if tg == nil {
				t.Fatalf("no ldap target in %v", res.Targets)
			}
			if tg.Interval != tc.interval || tg.Timeout != tc.timeout {
				t.Errorf("interval %s timeout %s, want %s and %s", tg.Interval, tg.Timeout, tc.interval, tc.timeout)
			}
		})
	}
}

func skipLines(res *PlanResult) []string {
	var out []string
	for _, s := range res.Skipped {
		out = append(out, fmt.Sprintf("%s %s %s", s.Flow, s.Code, s.Port))
	}
	return out
}

func ids(res *PlanResult) []string {
	var out []string
	for _, tg := range res.Targets {
		out = append(out, tg.ID)
	}
	return out
}

func TestPlanRanges(t *testing.T) {
	src := `
products:
  - name: demo
    self: appliance
    only: [hv-range, hv-dynamic]
    %s
    roles:
      hypervisor: {hosts: [hv1.example.org]}
`
	for _, tc := range []struct {
		ranges string
		ids    []string
		skips  []string
	}{
		{"", []string{"demo/hv-range/hv1.example.org:6910/tcp/tcp"}, []string{
			"hv-range range_rest 6910-6912", "hv-dynamic dynamic_port dynamic"}},
		{"ranges: first", []string{"demo/hv-range/hv1.example.org:6910/tcp/tcp"}, []string{
			"hv-range range_rest 6910-6912", "hv-dynamic dynamic_port dynamic"}},
		{"ranges: all", []string{
			"demo/hv-range/hv1.example.org:6910/tcp/tcp",
			"demo/hv-range/hv1.example.org:6911/tcp/tcp",
			"demo/hv-range/hv1.example.org:6912/tcp/tcp",
		}, []string{"hv-dynamic dynamic_port dynamic"}},
		{"ranges: skip", nil, []string{"hv-range range 6910-6912", "hv-dynamic dynamic_port dynamic"}},
	} {
		res := planYAML(t, fmt.Sprintf(src, tc.ranges))
		diffLines(t, tc.ranges+" targets", ids(res), tc.ids)
		diffLines(t, tc.ranges+" skips", skipLines(res), tc.skips)
	}
}

// A bare product name plans nothing and says why for every flow; the
// firewall request still lists every flow, with roles for unknown hosts.
func TestPlanBareProduct(t *testing.T) {
	cfg, err := LoadConfig("testdata/config/good/minimal.yml")
	if err != nil {
		t.Fatal(err)
	}
	res, err := Plan(loadDemo(t), cfg, fakeBinder{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Targets) != 0 {
		t.Errorf("targets %v", ids(res))
	}
	if len(res.Skipped) != 9 {
		t.Fatalf("skipped %d flows, want all 9: %v", len(res.Skipped), skipLines(res))
	}
	for _, s := range res.Skipped {
		if s.Code != SkipOtherSource || s.Reason != "self is not set, so this instance originates no flows of demo" {
			t.Errorf("%s: %s %q", s.Flow, s.Code, s.Reason)
		}
	}
	var rules []string
	for _, r := range res.Rules() {
		rules = append(rules, fmt.Sprintf("%s -> %s %s/%s %s", r.Source, r.Destination, r.Protocol, r.Ports, r.Note))
	}
	diffLines(t, "rules", rules, []string{
		"<appliance> -> <dc> tcp/389 ",
		"<appliance> -> <dc> tcp/636 ",
		"<appliance> -> <hypervisor> tcp/443 ",
		"<appliance> -> <hypervisor> tcp/6910-6912 ",
		"<appliance> -> <hypervisor> tcp/dynamic " + NoteDynamic,
		"<appliance> -> <hypervisor> icmp/ ",
		"<admin> -> <appliance> tcp/443 ",
		"<admin> -> <appliance> tcp/8443 ",
		"<appliance> -> <dns-server> udp/53 ",
		"<appliance> -> updates.example.org tcp/443 ",
	})
}

func TestPlanNoHostsAndResponder(t *testing.T) {
	res := planYAML(t, `
products:
  - name: demo
    self: appliance
    exclude: [hv-range, hv-dynamic]
    roles:
      hypervisor:
        responder: true
        hosts: [192.0.2.30]
      dns-server:
        responder: true
        hosts: [192.0.2.53]
`)
	var got []string
	for _, tg := range res.Targets {
		got = append(got, fmt.Sprintf("%s %v", tg.ID, tg.Options))
	}
	diffLines(t, "targets", got, []string{
		"demo/dns/192.0.2.53:53/udp/udp map[responder:true]",
		"demo/hv-api/192.0.2.30:443/tcp/tcp map[responder:true]",
		"demo/hv-ping/192.0.2.30/icmp/icmp map[]",
		"demo/updates/updates.example.org:443/tcp/tls map[]",
	})
	diffLines(t, "skips", skipLines(res), []string{
		"ldap no_hosts ",
		"ldaps no_hosts ",
		"hv-range excluded ",
		"hv-dynamic excluded ",
		"console other_source ",
	})
	if r := res.Skipped[0].Reason; r != "role dc has no hosts in the config" {
		t.Errorf("reason %q", r)
	}
}

// A role's check replaces the hint's kind; a flow's check replaces the
// role's; the hint's implied options are dropped with its kind.
func TestPlanCheckOverrides(t *testing.T) {
	res := planYAML(t, `
products:
  - name: demo
    self: appliance
    only: [ldap, ldaps]
    roles:
      dc:
        check: tls
        hosts: [dc1.example.org]
        options:
          tls: {server_name: dc.example.org}
          ldap: {size_limit: 2}
    flows:
      ldap:
        check: ldap
`)
	var got []string
	for _, tg := range res.Targets {
		got = append(got, fmt.Sprintf("%s %v", tg.ID, tg.Options))
	}
	diffLines(t, "targets", got, []string{
		"demo/ldap/dc1.example.org:389/tcp/ldap map[size_limit:2]",
		"demo/ldaps/dc1.example.org:636/tcp/tls map[server_name:dc.example.org]",
	})
}

// IDs do not depend on the order of hosts or products in the config, and
// the targets come out sorted by ID.
func TestPlanStableIDs(t *testing.T) {
	a := planYAML(t, `
products:
  - name: demo
    self: appliance
    roles:
      dc: {hosts: [dc1.example.org, 192.0.2.21]}
      hypervisor: {hosts: [hv1.example.org]}
`)
	b := planYAML(t, `
products:
  - name: demo
    self: appliance
    roles:
      hypervisor: {hosts: [hv1.example.org]}
      dc: {hosts: [192.0.2.21, dc1.example.org]}
`)
	diffLines(t, "ids", ids(b), ids(a))
	for i := 1; i < len(a.Targets); i++ {
		if a.Targets[i-1].ID >= a.Targets[i].ID {
			t.Errorf("not sorted: %s before %s", a.Targets[i-1].ID, a.Targets[i].ID)
		}
	}
	if len(a.Targets) != 8 {
		t.Errorf("%d targets: %v", len(a.Targets), ids(a))
	}
}

func TestConfigFromFlags(t *testing.T) {
	cfg, err := ConfigFromFlags(Flags{
		Product: "demo", Self: []string{"appliance"},
		Hosts: []string{"dc=dc1.example.org,192.0.2.21", "hypervisor=hv1.example.org"},
		Flows: []string{"ldap", "hv-api"}, Timeout: 45 * time.Second,
		Check: "tcp", Expect: probe.ExpectDeny,
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Plan(loadDemo(t), cfg, fakeBinder{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tg := range res.Targets {
		got = append(got, targetLine(tg))
	}
	diffLines(t, "targets", got, []string{
		"demo/hv-api/hv1.example.org:443/tcp/tcp every 1m30s within 45s expect deny required map[]",
		"demo/ldap/192.0.2.21:389/tcp/tcp every 1m30s within 45s expect deny required map[]",
		"demo/ldap/dc1.example.org:389/tcp/tcp every 1m30s within 45s expect deny required map[]",
	})

	_, err = ConfigFromFlags(Flags{Hosts: []string{"dc", "hypervisor=bad host"}, Check: "tcp"})
	diffLines(t, "errors", errLines(err), []string{
		"command line: --product is required",
		`command line: --host "dc": want ROLE=HOST[,HOST...]`,
		"command line: --check, --set and --expect need --flow",
	})
	_, err = ConfigFromFlags(Flags{Product: "demo", Hosts: []string{"hypervisor=bad host"}})
	diffLines(t, "errors", errLines(err), []string{
		`command line: product demo: role hypervisor: host "bad host" is neither an IP address nor a valid DNS name`,
	})
	cfg, err = ConfigFromFlags(Flags{Product: "demo", Self: []string{"robot"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Plan(loadDemo(t), cfg, fakeBinder{})
	diffLines(t, "errors", errLines(err), []string{
		`command line: product demo: self: unknown role "robot" (roles of demo: admin, appliance, dc, dns-server, hypervisor)`,
	})
}

// A config that would plan more targets than max_targets is refused with
// the count, before the targets are built; the ceiling itself is allowed.
func TestPlanMaxTargets(t *testing.T) {
	cat, err := catalog.Load()
	if err != nil {
		t.Fatal(err)
	}
	plan := func(max int) (*PlanResult, error) {
		cfg, err := ParseConfig("site.yml", []byte(fmt.Sprintf("max_targets: %d\n%s", max, largeRole(5))))
		if err != nil {
			t.Fatal(err)
		}
		return Plan(cat, cfg, fakeBinder{})
	}
	res, err := plan(100)
	if err != nil {
		t.Fatal(err)
	}
	n := len(res.Targets)
	if n == 0 {
		t.Fatal("no targets")
	}
	if _, err := plan(n); err != nil {
		t.Errorf("max_targets %d, the exact count: %v", n, err)
	}
	_, err = plan(n - 1)
	want := fmt.Sprintf("site.yml:1: the config plans %d targets, more than max_targets %d; raise max_targets or plan fewer hosts, flows or ports", n, n-1)
	if err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}
	if _, err := ParseConfig("site.yml", []byte("max_targets: 0\n")); err == nil || err.Error() != "site.yml:1: max_targets must be at least 1, not 0" {
		t.Errorf("max_targets 0: %v", err)
	}
}
