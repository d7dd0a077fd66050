package site

// The parser's small readers: positions, errors and scalar values, each a
// thin layer over the shared strict walker (probe/internal/yamlnode).

import (
	"maps"
	"slices"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/flowprobe/flowprobe/probe/internal/yamlnode"
)

func (p *parser) pos(n *yaml.Node) pos { return pos{p.file, n.Line} }

func (p *parser) errorf(n *yaml.Node, ctx []string, format string, args ...any) {
	p.w.Errorf(n, ctx, format, args...)
}

var (
	resolve = yamlnode.Resolve
	isNull  = yamlnode.IsNull
)

// fields walks a mapping, calling the handler of each known key in file
// order and recording each key's position.
func (p *parser) fields(n *yaml.Node, ctx []string, what string, keys keyPos, handlers map[string]func(v *yaml.Node)) {
	keys[""] = p.pos(resolve(n))
	m := p.w.Fields(n, ctx, what, slices.Collect(maps.Keys(handlers)))
	if m == nil {
		return
	}
	for _, k := range m.Order {
		keys[k] = p.pos(m.Key(k))
		handlers[k](m.Value(k))
	}
}

func (p *parser) str(n *yaml.Node, ctx []string, key string, dst *string) {
	if s, ok := p.w.String(n, ctx, key); ok {
		*dst = s
	}
}

func (p *parser) strList(n *yaml.Node, ctx []string, key string, dst *[]string) {
	l, _ := p.w.Strings(n, ctx, key, true)
	*dst = append(*dst, l...)
}

func (p *parser) duration(n *yaml.Node, ctx []string, key string, dst *time.Duration) {
	p.durationMin(n, ctx, key, dst, false)
}

// durationMin parses a duration; zero is accepted when zeroOK (it means
// "off").
func (p *parser) durationMin(n *yaml.Node, ctx []string, key string, dst *time.Duration, zeroOK bool) {
	if d, ok := p.w.Duration(n, ctx, key, zeroOK); ok {
		*dst = d
	}
}

func (p *parser) integer(n *yaml.Node, ctx []string, key string, dst *int) {
	if v, ok := p.w.Int(n, ctx, key); ok {
		*dst = v
	}
}

func (p *parser) boolean(n *yaml.Node, ctx []string, key string, dst *bool) {
	if v, ok := p.w.Bool(n, ctx, key); ok {
		*dst = v
	}
}
