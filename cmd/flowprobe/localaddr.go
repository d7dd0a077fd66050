package main

import (
	"net"

	"github.com/flowprobe/flowprobe/probe/site"
)

// interfaceAddresses returns this machine's unicast addresses that are not
// loopback or link-local, read from its network interfaces. Loopback is
// left out so that a config probing a local test server on 127.0.0.1 keeps
// probing it; give self_addresses to name loopback addresses.
func interfaceAddresses() []string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLoopback() || ipn.IP.IsLinkLocalUnicast() || ipn.IP.IsMulticast() || ipn.IP.IsUnspecified() {
			continue
		}
		out = append(out, ipn.IP.String())
	}
	return out
}

// detectLocal completes a config without self_addresses with this
// machine's interface addresses, so that the nodes of a cluster can share
// one file: each skips itself.
func detectLocal(cfg *site.Config) {
	if len(cfg.SelfAddresses) == 0 {
		cfg.LocalAddresses = interfaceAddresses()
	}
}
