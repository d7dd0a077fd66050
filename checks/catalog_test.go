package checks

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/probe/catalog"
)

// udpWithoutReply lists the catalog's UDP flows that may stay a bare udp
// check, and why: the protocol is one-way, or there is nothing a probe may
// ask. Keyed by app hint, or by product/flow for a flow without one.
var udpWithoutReply = map[string]string{
	"syslog":                     "one-way: a syslog receiver never answers (RFC 5426)",
	"snmp-trap":                  "one-way: traps are not acknowledged",
	"dhcp":                       "a relayed broadcast exchange; a probe must not take leases from a production DHCP server",
	"smb":                        "SMB has no UDP transport on 139 or 445; the vendor's table lists them anyway",
	"ldaps":                      "LDAPS has no UDP transport (connectionless LDAP is the cldap hint, on 389)",
	"xenserver/clustering-udp":   "corosync speaks only to the members of its own cluster",
	"xenserver/pvs-to-target":    "Citrix Provisioning's own streaming protocol, unpublished",
	"xenserver/pvs-target-logon": "Citrix Provisioning's own streaming protocol, unpublished",
	"xenserver/pvs-target-port":  "Citrix Provisioning's own streaming protocol, unpublished",
	"xenserver/pvs-server-ports": "Citrix Provisioning's own streaming protocol, unpublished",
}

// No catalog flow over UDP with a request/response protocol falls back to
// a bare udp datagram, which a real service ignores (no_response, never
// ok); the exceptions are listed above with their reason, and none of
// them is stale.
func TestCatalogUDPFlowsAreProtocolAware(t *testing.T) {
	cat, err := catalog.Load()
	if err != nil {
		t.Fatal(err)
	}
	var b Binder
	used := map[string]bool{}
	for _, name := range cat.Names() {
		p, _ := cat.Product(name)
		for _, f := range p.Flows {
			if f.Protocol != probe.UDP {
				continue
			}
			kind, _ := b.KindFor(f.App, f.Protocol)
			key := f.App
			if key == "" {
				key = name + "/" + f.ID
			}
			_, allowed := udpWithoutReply[key]
			switch {
			case kind == "udp" && !allowed:
				t.Errorf("%s/%s (app %q, udp %v) falls back to a bare udp check", name, f.ID, f.App, f.Ports)
			case kind != "udp" && allowed:
				t.Errorf("%s/%s is allowed a bare udp check but gets %s: drop %q from the list", name, f.ID, kind, key)
			}
			used[key] = true
		}
	}
	for key := range udpWithoutReply {
		if !used[key] {
			t.Errorf("udpWithoutReply lists %q, which no UDP flow of the catalog has", key)
		}
	}
}

// catalogCoverage is, per product, the number of flows whose default check
// speaks the flow's protocol (anything but a bare tcp or udp check) and
// the number of flows.
func catalogCoverage(t *testing.T) (lines []string) {
	t.Helper()
	cat, err := catalog.Load()
	if err != nil {
		t.Fatal(err)
	}
	var b Binder
	var aware, all int
	row := func(name string, a, n int) string {
		return fmt.Sprintf("| %s | %d / %d | %.0f%% |", name, a, n, 100*float64(a)/float64(n))
	}
	for _, name := range cat.Names() {
		p, _ := cat.Product(name)
		a := 0
		for _, f := range p.Flows {
			if kind, _ := b.KindFor(f.App, f.Protocol); kind != "tcp" && kind != "udp" {
				a++
			}
		}
		lines = append(lines, row(name, a, len(p.Flows)))
		aware += a
		all += len(p.Flows)
	}
	return append(lines, row("all", aware, all))
}

// TestCatalogCoverage prints the share of catalog flows with a
// protocol-aware default check, per product, and fails while the table in
// docs/catalog.md shows other figures:
//
//	go test -run TestCatalogCoverage -v ./checks
func TestCatalogCoverage(t *testing.T) {
	table := "| product | protocol-aware flows | share |\n|---|---|---|\n" + strings.Join(catalogCoverage(t), "\n") + "\n"
	t.Log("\n" + table)
	doc, err := os.ReadFile("../docs/catalog.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), table) {
		t.Errorf("docs/catalog.md, \"Check coverage\": the table is out of date; put in the one above")
	}
}
