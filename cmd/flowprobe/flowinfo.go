package main

import (
	"strings"

	"github.com/flowprobe/flowprobe/exporter"
	"github.com/flowprobe/flowprobe/probe"
)

// flowInfo describes the flows of products for the status page: the
// purpose and the vendor's ports of each catalog flow, so that a flow
// whose port the site moved still shows the port the vendor documents.
func flowInfo(products []*probe.Product) func(product, flow string) exporter.FlowInfo {
	m := map[string]exporter.FlowInfo{}
	for _, p := range products {
		for _, f := range p.Flows {
			var ports []string
			for _, ps := range f.Ports {
				ports = append(ports, ps.String())
			}
			info := exporter.FlowInfo{Purpose: f.Purpose}
			if len(ports) > 0 {
				info.Ports = strings.Join(ports, ",") + "/" + string(f.Protocol)
			}
			m[p.Name+"\x00"+f.ID] = info
		}
	}
	return func(product, flow string) exporter.FlowInfo { return m[product+"\x00"+flow] }
}
