package site

import (
	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/probe/catalog"

	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeBinder stands in for checks.Binder (probe cannot import checks): a
// few kinds, the same hint rules, and options that decode to a copy of the
// raw map. A key named "bogus" is rejected like an unknown field.
type fakeBinder struct{}

var fakeKinds = []string{"dns", "http", "icmp", "ldap", "ntp", "tcp", "tls", "udp"}

func (fakeBinder) KindFor(app string, proto probe.Protocol) (string, map[string]any) {
	switch {
	case proto == probe.ICMP:
		return "icmp", nil
	case app == "ldap" && proto == probe.TCP:
		return "ldap", nil
	case app == "ldaps" && proto == probe.TCP:
		return "ldap", map[string]any{"mode": "ldaps"}
	case app == "https" && proto == probe.TCP:
		return "tls", nil
	}
	return string(proto), nil
}

func (fakeBinder) ResponderKind(proto probe.Protocol) (string, map[string]any, bool) {
	if proto == probe.ICMP {
		return "", nil, false
	}
	return string(proto), map[string]any{"responder": true}, true
}

func (fakeBinder) Known(kind string) bool { return slices.Contains(fakeKinds, kind) }

func (fakeBinder) Decode(kind string, raw map[string]any) (any, error) {
	if _, bad := raw["bogus"]; bad {
		return nil, fmt.Errorf("%s options: field bogus not found", kind)
	}
	return maps.Clone(raw), nil
}

func loadDemo(t *testing.T) *catalog.Catalog {
	t.Helper()
	cat, err := catalog.LoadFS(os.DirFS("testdata/plan"))
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

func errLines(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

func diffLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	t.Errorf("%s:\ngot:\n\t%s\nwant:\n\t%s", what, strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
}

var wantBad = map[string][]string{
	"empty.yml": {
		"FILE: the config is empty",
	},
	"shapes.yml": {
		"FILE:1: labels must be a mapping of label name to value",
		"FILE:4: product demo: self must be a string or a list of strings",
		"FILE:6: product demo: roles must be a mapping of role name to its hosts and settings",
		"FILE:7: product demo: flows must be a mapping of flow id to its settings",
		"FILE:8: each product must be a product name or a block with name: and its settings",
		"FILE:12: product demo2: role dc: hosts must be a list of names or addresses",
		"FILE:13: product demo2: role dc: responder must be true or false, not \"yes\"",
		"FILE:14: each product must be a product name or a block with name: and its settings",
	},
	"syntax.yml": {
		"FILE:2: found a tab character that violates indentation",
	},
	"two-docs.yml": {
		"FILE:2: a second YAML document; a config is one document",
	},
	"unknown-keys.yml": {
		"FILE:2: unknown key \"sites\" in the config (known: catalogs, defaults, ip_family, labels, max_targets, products, scheduler, self_addresses, site, source_address, trace)",
		"FILE:4: scheduler: unknown key \"max_inflight\" in scheduler (known: failing_interval, failures_before_down, jitter, max_in_flight, max_in_flight_per_host)",
		"FILE:11: product demo: role dc: unknown key \"password\" in a role (known: check, hosts, interval, options, ports, ranges, responder, timeout)",
		"FILE:13: product demo: role dc: options.ldap must be a mapping of ldap check options",
		"FILE:16: product demo: flow ldap: unknown key \"intervall\" in a flow (known: check, expect, interval, options, ranges, timeout)",
		"FILE:23: product demo: flow backup: unknown key \"port\" in an extra flow (known: app, check, destination, expect, hostname, id, interval, options, ports, protocol, purpose, ranges, required, source, timeout)",
	},
	"values.yml": {
		"FILE:2: label name \"flow\" is used by flowprobe's own metrics labels (product, flow, source, destination, target, protocol, port, check, outcome, phase, site)",
		"FILE:3: label name \"0bad\" is not a valid Prometheus label name",
		"FILE:4: label name \"__meta\" is not a valid Prometheus label name",
		"FILE:6: self_addresses: host \"not an address\" is neither an IP address nor a valid DNS name",
		"FILE:7: source_address \"appliance.example.org\" is not an IP address",
		"FILE:8: ip_family \"ip5\": want ip4 or ip6 (or leave it out for either)",
		"FILE:10: defaults: timeout 5s (inherited) must be shorter than interval 5s",
		"FILE:12: scheduler: max_in_flight must be at least 1, not 0",
		"FILE:14: scheduler: jitter must be between 0 and 1, not 1.5",
		"FILE:15: scheduler: failing_interval must not be negative (0 turns it off), not -1s",
		"FILE:16: scheduler: failures_before_down must be at least 1, not 0",
		"FILE:19: product demo: interval \"fast\" is not a duration such as 30s or 1m",
		"FILE:20: product demo: ranges \"some\": want first, all or skip",
		"FILE:25: product demo: role dc: host DC1.example.org. is listed twice",
		"FILE:26: product demo: role dc: host \"bad host!\" is neither an IP address nor a valid DNS name",
		"FILE:28: product demo: role dc: port 70000 of flow ldap is outside 1..65535",
		"FILE:31: product demo: role hypervisor: check \"tls\" conflicts with responder: true (a responder role is checked with tcp or udp)",
		"FILE:33: product demo: role hypervisor: port 0 of flow hv-api is outside 1..65535",
		"FILE:36: product demo: flow ldaps: expect \"maybe\": want allow or deny",
		"FILE:37: product demo: flow ldaps: timeout 2m0s must be shorter than interval 5s",
		"FILE:39: product demo: extra flow: an extra flow needs an id",
		"FILE:43: product demo: flow odd: an extra flow needs a destination role or a hostname",
		"FILE:45: product demo: flow odd: protocol \"sctp\": want tcp, udp or icmp",
		"FILE:46: product demo: flow odd: ports: port 99999 is outside 1..65535",
		"FILE:51: product demo: flow ping: an icmp flow has no ports",
		"FILE:52: product demo: flow ping: required \"always\": want required, optional or conditional",
		"FILE:53: product demo: the product is listed twice",
	},
}
var wantPlanBad = map[string][]string{
	"checks.yml": {
		"FILE:2: scheduler: failing_interval 4s must be longer than the timeout 5s of flow hv-ping of demo",
		"FILE:14: product demo: role dc: ldap options: field bogus not found (options merged from lines 7, 14)",
		"FILE:23: product demo: flow ldaps: timeout 10s must be shorter than interval 10s (flow settings combined with role dc)",
		"FILE:27: product demo: flow hv-api: check \"tls\" conflicts with responder: true of role hypervisor",
		"FILE:29: product demo: flow updates: unknown check kind \"gopher\"",
		"FILE:31: product demo: flow dns: udp options: field bogus not found",
	},
	"references.yml": {
		"FILE:3: defaults: options: unknown check kind \"telnet\"",
		"FILE:5: unknown product \"nosuch\" (known: demo)",
		"FILE:7: product demo: self: unknown role \"robot\" (roles of demo: admin, appliance, dc, dns-server, hypervisor)",
		"FILE:8: product demo: only: unknown flow \"ldapz\" (flows of demo: ldap, ldaps, hv-api, hv-range, hv-dynamic, hv-ping, console, dns, updates, backup)",
		"FILE:9: product demo: exclude: unknown flow \"gone\" (flows of demo: ldap, ldaps, hv-api, hv-range, hv-dynamic, hv-ping, console, dns, updates, backup)",
		"FILE:11: product demo: options: unknown check kind \"ftp\"",
		"FILE:14: product demo: role dc: unknown check kind \"smtp\"",
		"FILE:16: product demo: role dc: ports: the vendor does not document the port of flow ldap as configurable",
		"FILE:20: product demo: role hypervisor: ports: flow hv-ping is icmp and has no port",
		"FILE:20: product demo: role hypervisor: ports: flow ldap goes to role dc, not hypervisor",
		"FILE:21: product demo: unknown role \"printer\" (roles of demo: admin, appliance, dc, dns-server, hypervisor)",
		"FILE:24: product demo: flows: unknown flow \"nope\" (flows of demo: ldap, ldaps, hv-api, hv-range, hv-dynamic, hv-ping, console, dns, updates, backup)",
		"FILE:26: product demo: flows: \"backup\" is an extra flow; put its settings in its extra_flows entry",
		"FILE:34: product demo: extra flow \"ldap\" has the id of a catalog flow",
	},
}

// Every bad file reports all of its errors at once, in line order, each
// naming the file, the line and the product, role or flow.
func TestParseConfigBad(t *testing.T) {
	files, err := filepath.Glob("testdata/config/bad/*.yml")
	if err != nil || len(files) != len(wantBad) {
		t.Fatalf("bad files %v (%v); the table has %d", files, err, len(wantBad))
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			cfg, err := LoadConfig(file)
			if cfg != nil {
				t.Errorf("got a config from a bad file")
			}
			want := slices.Clone(wantBad[filepath.Base(file)])
			for i := range want {
				want[i] = strings.Replace(want[i], "FILE", file, 1)
			}
			diffLines(t, "errors", errLines(err), want)
		})
	}
}

// Errors that need the catalog or the check registry come from Plan, also
// all at once and placed in the config.
func TestPlanBad(t *testing.T) {
	cat := loadDemo(t)
	files, err := filepath.Glob("testdata/config/plan-bad/*.yml")
	if err != nil || len(files) != len(wantPlanBad) {
		t.Fatalf("plan-bad files %v (%v); the table has %d", files, err, len(wantPlanBad))
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			cfg, err := LoadConfig(file)
			if err != nil {
				t.Fatalf("the file itself should parse: %v", err)
			}
			res, err := Plan(cat, cfg, fakeBinder{})
			if res != nil {
				t.Errorf("got a plan despite errors")
			}
			want := slices.Clone(wantPlanBad[filepath.Base(file)])
			for i := range want {
				want[i] = strings.Replace(want[i], "FILE", file, 1)
			}
			diffLines(t, "errors", errLines(err), want)
		})
	}
}

func TestParseConfigGood(t *testing.T) {
	cfg, err := LoadConfig("testdata/config/good/full.yml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Site != "dc1" || cfg.Labels["env"] != "prod" || cfg.Labels["segment"] != "dmz" || len(cfg.Labels) != 2 {
		t.Errorf("site %q labels %v", cfg.Site, cfg.Labels)
	}
	want := SchedulerConfig{MaxInFlight: 64, MaxInFlightPerHost: 2, Jitter: 0.2, FailingInterval: 15 * time.Second, FailuresBeforeDown: 3}
	if cfg.Scheduler != want {
		t.Errorf("scheduler %+v, want %+v", cfg.Scheduler, want)
	}
	if cfg.Trace != (TraceConfig{NoAuto: true, DenyFlows: true}) {
		t.Errorf("trace %+v", cfg.Trace)
	}
	if cfg.Defaults.Interval != time.Minute || cfg.Defaults.Timeout != 10*time.Second {
		t.Errorf("defaults %+v", cfg.Defaults.Settings)
	}
	if len(cfg.Products) != 1 || cfg.Products[0].Name != "demo" || !slices.Equal(cfg.Products[0].Self, []string{"appliance"}) {
		t.Fatalf("products %+v", cfg.Products)
	}

	// Unset scheduler settings get their typed defaults.
	minimal, err := LoadConfig("testdata/config/good/minimal.yml")
	if err != nil {
		t.Fatal(err)
	}
	want = SchedulerConfig{MaxInFlight: DefaultMaxInFlight, MaxInFlightPerHost: DefaultMaxInFlightPerHost, FailuresBeforeDown: DefaultFailuresBeforeDown}
	if minimal.Scheduler != want {
		t.Errorf("default scheduler %+v, want %+v", minimal.Scheduler, want)
	}
	if minimal.Trace != (TraceConfig{}) {
		t.Errorf("default trace %+v: want the automatic trace on, deny flows left out", minimal.Trace)
	}
}

// targetLine is a compact, complete view of a target for comparisons.
func targetLine(t probe.Target) string {
	return fmt.Sprintf("%s every %s within %s expect %s %s %v", t.ID, t.Interval, t.Timeout, t.Expect, t.Required, t.Options)
}

func TestPlanFull(t *testing.T) {
	cfg, err := LoadConfig("testdata/config/good/full.yml")
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
		if tg.SourceAddress != "192.0.2.10" || tg.IPFamily != "ip4" {
			t.Errorf("%s: source address %q family %q", tg.ID, tg.SourceAddress, tg.IPFamily)
		}
	}
	ldapOpts := "map[base_dn:dc=example,dc=org bind_dn:cn=probe,dc=example,dc=org password_file:/etc/flowprobe/ldap.pw size_limit:5]"
	ldapsOpts := "map[bind_dn:cn=probe,dc=example,dc=org mode:ldaps password_file:/etc/flowprobe/ldap.pw size_limit:5]"
	want := []string{
		"demo/backup/backup.example.org:9102/tcp/tcp every 30s within 2s expect allow optional map[]",
		"demo/dns/198.51.100.53:53/udp/dns every 30s within 10s expect allow required map[name:dc1.example.org]",
		"demo/hv-api/hv1.example.org:8443/tcp/tls every 20s within 10s expect allow required map[]",
		"demo/hv-api/hv2.example.org:9443/tcp/tls every 20s within 10s expect allow required map[]",
		"demo/hv-ping/hv1.example.org/icmp/icmp every 20s within 10s expect allow required map[]",
		"demo/hv-ping/hv2.example.org/icmp/icmp every 20s within 10s expect allow required map[]",
		"demo/hv-range/hv1.example.org:6910/tcp/tcp every 20s within 10s expect allow required map[]",
		"demo/hv-range/hv1.example.org:6911/tcp/tcp every 20s within 10s expect allow required map[]",
		"demo/hv-range/hv1.example.org:6912/tcp/tcp every 20s within 10s expect allow required map[]",
		"demo/hv-range/hv2.example.org:6910/tcp/tcp every 20s within 10s expect allow required map[]",
		"demo/hv-range/hv2.example.org:6911/tcp/tcp every 20s within 10s expect allow required map[]",
		"demo/hv-range/hv2.example.org:6912/tcp/tcp every 20s within 10s expect allow required map[]",
		"demo/ldap/192.0.2.21:389/tcp/ldap every 2m0s within 3s expect allow required " + ldapOpts,
		"demo/ldap/dc1.example.org:389/tcp/ldap every 2m0s within 3s expect allow required " + ldapOpts,
		"demo/ldaps/192.0.2.21:636/tcp/ldap every 30s within 3s expect deny optional " + ldapsOpts,
		"demo/ldaps/dc1.example.org:636/tcp/ldap every 30s within 3s expect deny optional " + ldapsOpts,
		"demo/updates/updates.example.org:443/tcp/tls every 30s within 10s expect allow optional map[]",
	}
	diffLines(t, "targets", got, want)

	var skips []string
	for _, s := range res.Skipped {
		skips = append(skips, fmt.Sprintf("%s %s host=%s port=%s %s: %s", s.Flow, s.Code, s.Host, s.Port, s.Destination, s.Reason))
	}
	diffLines(t, "skipped", skips, []string{
		"hv-api own_host host=192.0.2.10 port= hypervisor: 192.0.2.10 is one of self_addresses",
		"hv-range own_host host=192.0.2.10 port= hypervisor: 192.0.2.10 is one of self_addresses",
		"hv-dynamic excluded host= port= hypervisor: excluded in the config",
		"hv-ping own_host host=192.0.2.10 port= hypervisor: 192.0.2.10 is one of self_addresses",
		"console other_source host= port= appliance: source role admin is not this instance's role (self: appliance); the instance running as admin checks it",
	})

	var rules []string
	for _, r := range res.Rules() {
		rules = append(rules, fmt.Sprintf("%s %s -> %s %s/%s %s", r.Action, r.Source, r.Destination, r.Protocol, r.Ports, r.Flow))
	}
	diffLines(t, "rules", rules, []string{
		"allow 192.0.2.10 -> dc1.example.org tcp/389 ldap",
		"allow 192.0.2.10 -> 192.0.2.21 tcp/389 ldap",
		"deny 192.0.2.10 -> dc1.example.org tcp/636 ldaps",
		"deny 192.0.2.10 -> 192.0.2.21 tcp/636 ldaps",
		"allow 192.0.2.10 -> hv1.example.org tcp/8443 hv-api",
		"allow 192.0.2.10 -> hv2.example.org tcp/9443 hv-api",
		"allow 192.0.2.10 -> hv1.example.org tcp/6910-6912 hv-range",
		"allow 192.0.2.10 -> hv2.example.org tcp/6910-6912 hv-range",
		"allow 192.0.2.10 -> hv1.example.org icmp/ hv-ping",
		"allow 192.0.2.10 -> hv2.example.org icmp/ hv-ping",
		"allow 198.51.100.7 -> 192.0.2.10 tcp/443 console",
		"allow 198.51.100.7 -> 192.0.2.10 tcp/8443 console",
		"allow 192.0.2.10 -> 198.51.100.53 udp/53 dns",
		"allow 192.0.2.10 -> updates.example.org tcp/443 updates",
		"allow 192.0.2.10 -> backup.example.org tcp/9102 backup",
	})
}
