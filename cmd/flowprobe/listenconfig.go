package main

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/flowprobe/flowprobe/checks"
	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/probe/catalog"
	"github.com/flowprobe/flowprobe/probe/site"
)

// configPorts plans the site config at path as `flowprobe check` on the
// other hosts will, and returns the TCP and UDP ports it will probe on this
// machine: the targets to role when role is given, else the targets whose
// host is one of this machine's addresses (self_addresses, or the
// interfaces' addresses). Port overrides, extra flows, responder roles and
// the ranges setting are the planner's, so listen opens exactly what check
// probes.
func configPorts(cat *catalog.Catalog, path, role string) (ports []listenPort, notes []string, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("load config: %w", err)
	}
	var mine map[string]bool
	_, res, err := site.CheckConfig(cat.Products, path, data, checks.Binder{}, func(cfg *site.Config) {
		addrs := cfg.SelfAddresses
		if len(addrs) == 0 {
			addrs = append(interfaceAddresses(), "127.0.0.1", "::1")
		}
		mine = map[string]bool{}
		for _, a := range addrs {
			mine[strings.ToLower(a)] = true
		}
		// Plan every host, this one included: the checks of the other
		// hosts come here.
		cfg.SelfAddresses, cfg.LocalAddresses = nil, nil
	})
	if err != nil {
		return nil, nil, err
	}
	ports, notes = targetPorts(res.Targets, role, mine)
	if role != "" && len(ports) == 0 && len(notes) == 0 {
		roles := map[string]bool{}
		for _, t := range res.Targets {
			roles[t.Destination] = true
		}
		return nil, nil, fmt.Errorf("%s: no flow checked by this config goes to role %q (roles checked: %s)",
			path, role, strings.Join(slices.Sorted(maps.Keys(roles)), ", "))
	}
	return ports, notes, nil
}

// targetPorts returns the TCP and UDP ports of the targets to role (when
// given) or to a host in mine, each with the flows that use it.
func targetPorts(targets []probe.Target, role string, mine map[string]bool) (ports []listenPort, notes []string) {
	var set portSet
	for _, t := range targets {
		if role != "" && t.Destination != role || role == "" && !mine[strings.ToLower(t.Host)] {
			continue
		}
		if t.Protocol != probe.TCP && t.Protocol != probe.UDP {
			notes = append(notes, fmt.Sprintf("flow %s: %s needs no listener (the kernel answers echo requests)", t.Flow, t.Protocol))
			continue
		}
		set.add(t.Protocol, t.Port, t.Flow)
	}
	return set.sorted(), notes
}
