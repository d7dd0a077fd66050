package site

import (
	"fmt"
	"strings"
	"testing"

	"github.com/flowprobe/flowprobe/probe/catalog"
)

// largeRole is a site where one LifeKeeper node checks n peer nodes: the
// node role references itself, so every flow node → node fans out to all
// n hosts.
func largeRole(n int) string {
	var b strings.Builder
	b.WriteString("self_addresses: [10.0.0.1]\nproducts:\n  - name: sios-lifekeeper\n    self: node\n    roles:\n      node:\n        hosts:\n")
	for i := range n {
		fmt.Fprintf(&b, "          - 10.%d.%d.%d\n", i>>16&255, i>>8&255, i&255+1)
	}
	return b.String()
}

func BenchmarkPlanLargeRole(b *testing.B) {
	cat, err := catalog.Load()
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			cfg, err := ParseConfig("large.yml", []byte(largeRole(n)))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				res, err := Plan(cat, cfg, fakeBinder{})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(len(res.Targets)), "targets")
			}
		})
	}
}
