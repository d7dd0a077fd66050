package catalog

import (
	"slices"
	"strings"

	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/probe/internal/yamlnode"
	"go.yaml.in/yaml/v3"
)

// printed reads what the documents print where the flow checks a corrected
// value: "PROTO/PORT[,PORT...]" for every revision of the flow, or a
// mapping of revision → that form.
func (p *catalogParser) printed(n *yaml.Node, label string, f *probe.Flow) []probe.Printed {
	if n == nil {
		return nil
	}
	type item struct {
		rev  string
		node *yaml.Node
	}
	var items []item
	switch n.Kind {
	case yaml.ScalarNode:
		items = append(items, item{"", n})
	case yaml.MappingNode:
		for j := 0; j+1 < len(n.Content); j += 2 {
			k := n.Content[j]
			if !slices.Contains(f.Revisions, k.Value) {
				p.errorf(k, label, "printed: %q is not a revision of the flow (%s)", k.Value, strings.Join(f.Revisions, ", "))
				continue
			}
			items = append(items, item{k.Value, yamlnode.Resolve(n.Content[j+1])})
		}
	default:
		p.errorf(n, label, "printed must be PROTOCOL/PORT[,PORT...] or a mapping of revision to that")
		return nil
	}
	if f.Protocol == probe.ICMP {
		p.errorf(n, label, "printed: icmp flows have no ports")
		return nil
	}
	var out []probe.Printed
	for _, it := range items {
		s, ok := p.w.String(it.node, flowCtx(label), "printed")
		if !ok {
			continue
		}
		pr, err := probe.ParsePrinted(it.rev, s)
		if err != nil {
			p.errorf(it.node, label, "%v", err)
			continue
		}
		if pr.Protocol == f.Protocol && slices.Equal(pr.Ports, f.Ports) {
			p.errorf(it.node, label, "printed %s is what the flow checks; leave printed out", pr)
			continue
		}
		out = append(out, pr)
	}
	return out
}
