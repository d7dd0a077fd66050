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
