package main

import (
	"fmt"
	"net/netip"

	"github.com/flowprobe/flowprobe/checks"
	"github.com/flowprobe/flowprobe/probe"
)

// icmpAvailable is checks.ICMPAvailable; tests replace it.
var icmpAvailable = checks.ICMPAvailable

// icmpProblems says, once per address family, why the icmp targets among
// targets cannot run from this process (no CAP_NET_RAW and a closed
// ping_group_range). Every such check would fail the same way, so the
// commands report it up front instead of as many identical failures.
func icmpProblems(targets []probe.Target) []error {
	need := map[string]bool{}
	for _, t := range targets {
		if t.Check != "icmp" {
			continue
		}
		family := t.IPFamily
		if family == "" {
			family = "ip4"
			if a, err := netip.ParseAddr(t.Host); err == nil && a.Is6() && !a.Is4In6() {
				family = "ip6"
			}
		}
		need[family] = true
	}
	var errs []error
	for _, family := range []string{"ip4", "ip6"} {
		if !need[family] {
			continue
		}
		if err := icmpAvailable(family); err != nil {
			errs = append(errs, fmt.Errorf("icmp targets (%s) cannot run here: %w", family, err))
		}
	}
	return errs
}
