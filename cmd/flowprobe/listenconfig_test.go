package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowprobe/flowprobe/probe/catalog"
)

// listen with a config opens what check with the same file probes on this
// host: port overrides, extra flows and responder roles included, found by
// the host's address or by --role.
func TestListenPortsFromConfig(t *testing.T) {
	cat, err := catalog.Load()
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "site.yml")
	writeFile(t, cfg, `self_addresses: [127.0.0.3]
products:
  - name: sios-lifekeeper
    self: [node, api-client]
    only: [comm-path, monitoring-api, lkping, lkpolicy, data-replication, backup-agent]
    roles:
      node:
        hosts: [127.0.0.2, 127.0.0.3]
        ports: {monitoring-api: 7779}
    extra_flows:
      - {id: backup-agent, source: node, destination: node, protocol: udp, ports: [9999]}
`)
	show := func(role string) string {
		t.Helper()
		ports, _, err := configPorts(cat, cfg, role)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range ports {
			got = append(got, fmt.Sprintf("%s/%d(%s)", p.proto, p.port, strings.Join(p.flows, ",")))
		}
		return strings.Join(got, " ")
	}
	// 779 is overridden to 7779; the range opens its first port, as check
	// checks it; lkping needs no listener.
	want := "tcp/778(lkpolicy) tcp/7365(comm-path) tcp/7779(monitoring-api) tcp/10001(data-replication) udp/9999(backup-agent)"
	if got := show(""); got != want {
		t.Errorf("by address:\n got %s\nwant %s", got, want)
	}
	if got := show("node"); got != want {
		t.Errorf("--role node:\n got %s\nwant %s", got, want)
	}
	if _, _, err := configPorts(cat, cfg, "gui-client"); err == nil || !strings.Contains(err.Error(), `no flow checked by this config goes to role "gui-client"`) {
		t.Errorf("--role gui-client: %v", err)
	}
}
