package site

import (
	"fmt"
	"testing"

	"github.com/flowprobe/flowprobe/probe/catalog"
)

// A documented range may be narrowed to a range (or a port) inside it, for
// the checks and the firewall request; anything outside it is an error.
func TestPlanNarrowDocumentedRange(t *testing.T) {
	cat, err := catalog.Load()
	if err != nil {
		t.Fatal(err)
	}
	plan := func(src string) (*PlanResult, error) {
		t.Helper()
		cfg, err := ParseConfig("site.yml", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		return Plan(cat, cfg, fakeBinder{})
	}
	res, err := plan(`
self_addresses: [192.0.2.41]
products:
  - name: sios-lifekeeper
    self: node
    only: [data-replication]
    ranges: all
    roles:
      node:
        hosts: [192.0.2.41, {host: 192.0.2.42, ports: {data-replication: 10001-10003}}]
`)
	if err != nil {
		t.Fatal(err)
	}
	var targets, rules []string
	for _, tg := range res.Targets {
		targets = append(targets, fmt.Sprintf("%s:%d", tg.Host, tg.Port))
	}
	for _, r := range res.Rules() {
		rules = append(rules, r.Source+" -> "+r.Destination+" "+r.Ports)
	}
	diffLines(t, "targets", targets, []string{"192.0.2.42:10001", "192.0.2.42:10002", "192.0.2.42:10003"})
	diffLines(t, "rules", rules, []string{"192.0.2.41 -> 192.0.2.42 10001-10003", "192.0.2.42 -> 192.0.2.41 10001-65535"})

	_, err = plan(`
products:
  - name: sios-lifekeeper
    roles:
      node:
        hosts: [192.0.2.41]
        ports: {data-replication: 9000-10010, comm-path: 7000-7400}
  - name: xenserver
    roles:
      provisioning-server:
        ports: {pvs-server-ports: 6915}
`)
	diffLines(t, "errors", errLines(err), []string{
		`site.yml:7: product sios-lifekeeper: role node: ports: range 7000-7400 of flow comm-path does not lie inside a documented range of the flow (7365)`,
		`site.yml:7: product sios-lifekeeper: role node: ports: range 9000-10010 of flow data-replication does not lie inside a documented range of the flow (10001-65535)`,
	})
}
