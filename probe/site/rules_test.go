package site

import (
	"fmt"
	"testing"

	"github.com/flowprobe/flowprobe/probe"
)

// Rules asking for the same traffic become one rule naming every flow; a
// deny rule never merges with an allow rule.
func TestMergeRules(t *testing.T) {
	r := func(action probe.Expect, src, flow string, req probe.Requirement, ports string) Rule {
		return Rule{Action: action, Source: src, Destination: "192.0.2.2", Protocol: probe.TCP, Ports: ports,
			Product: "p", Flow: flow, Required: req, Purpose: "purpose " + flow}
	}
	got := mergeRules([]Rule{
		r(probe.ExpectAllow, "192.0.2.1", "a", probe.Optional, "81"),
		r(probe.ExpectAllow, "192.0.2.1", "b", probe.Required, "82"),
		r(probe.ExpectAllow, "192.0.2.1", "c", probe.Required, "81"),
		r(probe.ExpectDeny, "192.0.2.1", "d", probe.Required, "81"),
		r(probe.ExpectAllow, "192.0.2.9", "e", probe.Required, "81"),
		r(probe.ExpectAllow, "192.0.2.1", "a", probe.Optional, "81"),
	})
	var lines []string
	for _, x := range got {
		lines = append(lines, fmt.Sprintf("%s %s %s %s [%s] %s", x.Action, x.Source, x.Ports, x.Flow, x.Purpose, x.Required))
	}
	diffLines(t, "rules", lines, []string{
		"allow 192.0.2.1 81 a, c [purpose a; purpose c] required",
		"allow 192.0.2.1 82 b [purpose b] required",
		"deny 192.0.2.1 81 d [purpose d] required",
		"allow 192.0.2.9 81 e [purpose e] required",
	})
}

// exclude drops a flow from the checks and the request; request_only keeps
// it in the request without checking it.
func TestPlanExcludeAndRequestOnly(t *testing.T) {
	res := planYAML(t, `
products:
  - name: demo
    self: appliance
    only: [ldap, ldaps, dns]
    exclude: [ldaps]
    request_only: [dns]
    roles:
      dc: {hosts: [192.0.2.10]}
      dns-server: {hosts: [192.0.2.53]}
`)
	var targets, skips, rules []string
	for _, tg := range res.Targets {
		targets = append(targets, tg.Flow)
	}
	for _, s := range res.Skipped {
		skips = append(skips, s.Flow+" "+string(s.Code)+": "+s.Reason)
	}
	for _, r := range res.Rules() {
		rules = append(rules, r.Flow+" "+r.Destination)
	}
	diffLines(t, "targets", targets, []string{"ldap"})
	diffLines(t, "skipped", skips, []string{
		"ldaps excluded: excluded in the config",
		"dns request_only: request_only: in the firewall request, not checked",
	})
	diffLines(t, "rules", rules, []string{"ldap 192.0.2.10", "dns 192.0.2.53"})

	cfg, err := ParseConfig("site.yml", []byte(`
products:
  - name: demo
    exclude: [dns]
    request_only: [dns, nope]
`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Plan(loadDemo(t), cfg, fakeBinder{})
	diffLines(t, "errors", errLines(err), []string{
		`site.yml:5: product demo: request_only: unknown flow "nope" (flows of demo: ldap, ldaps, hv-api, hv-range, hv-dynamic, hv-ping, console, dns, updates)`,
		`site.yml:5: product demo: request_only: flow "dns" is also in exclude, which drops it from the firewall request`,
	})
}
