package checks

import (
	"cmp"
	"fmt"
	"sync"

	"github.com/flowprobe/flowprobe/probe"
)

// hintBinding is what a catalog flow's application hint turns into.
type hintBinding struct {
	kind  string
	proto probe.Protocol // the transport the kind needs; another falls back to tcp/udp
	// options the hint implies (nil for none).
	options map[string]any
}

// hintKey is an application hint over one transport.
type hintKey struct {
	app   string
	proto probe.Protocol
}

// hints maps application hints (Flow.App) over a transport to check kinds,
// collected from the Hints of the registered kinds. A hint not listed, or
// listed for another transport, is checked with the plain tcp or udp check
// of the flow's protocol.
var hints = sync.OnceValue(func() map[hintKey]hintBinding {
	m := map[hintKey]hintBinding{}
	for _, name := range Names() {
		k := registry[name]
		for _, h := range k.Hints {
			key := hintKey{h.App, cmp.Or(h.Transport, k.Transport)}
			if prev, dup := m[key]; dup {
				panic(fmt.Sprintf("checks: hint %q over %s selects both %s and %s", h.App, key.proto, prev.kind, name))
			}
			m[key] = hintBinding{kind: name, proto: key.proto, options: h.Options}
		}
	}
	return m
})

// Binder binds flows to check kinds for site.Plan, using the hint table
// above and the check registry.
type Binder struct {
	// Audit, when set, makes Decode audit every secret the options name
	// (Secret.Audit): a secret that cannot be read is a decode error, and
	// the warnings are collected in Audit. Without it planning never
	// touches a secret.
	Audit *SecretAudit
}

// KindFor returns the check kind for app hint app over proto, with the
// options the hint implies. icmp flows always use the icmp check.
func (Binder) KindFor(app string, proto probe.Protocol) (string, map[string]any) {
	if proto == probe.ICMP {
		return "icmp", nil
	}
	if h, ok := hints()[hintKey{app, proto}]; ok {
		var opts map[string]any
		if h.options != nil {
			opts = make(map[string]any, len(h.options))
			for k, v := range h.options {
				opts[k] = v
			}
		}
		return h.kind, opts
	}
	return string(proto), nil
}

// Known reports whether kind is in the check registry.
func (Binder) Known(kind string) bool {
	_, ok := registry[kind]
	return ok
}

// Decode decodes and validates raw options for kind (see Decode), and
// audits their secrets when b.Audit is set.
func (b Binder) Decode(kind string, raw map[string]any) (any, error) {
	o, err := Decode(kind, raw)
	if err != nil || b.Audit == nil {
		return o, err
	}
	if err := b.Audit.audit(kind, o); err != nil {
		return nil, fmt.Errorf("%s options: %w", kind, err)
	}
	return o, nil
}

// ResponderKind returns the kind for a flow over proto to a host running
// `flowprobe listen`: the tcp or udp check with responder: true. An icmp
// flow is checked as any other.
func (Binder) ResponderKind(proto probe.Protocol) (string, map[string]any, bool) {
	if proto != probe.TCP && proto != probe.UDP {
		return "", nil, false
	}
	return string(proto), map[string]any{"responder": true}, true
}
