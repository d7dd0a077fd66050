// Package site reads a site configuration (which products run here, as
// which role, the hosts of the other roles, how often to check), validates
// it, and plans it against the catalog: flows × hosts → probe.Target, with
// the skipped flows and the firewall request beside them. Its errors name
// the config file, the line and the product, role or flow.
package site

import (
	"github.com/flowprobe/flowprobe/probe"

	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Defaults of the site configuration. The JSON Schema's defaults
// (deploy/config.schema.json) are tested against them.
const (
	DefaultInterval           = 30 * time.Second
	DefaultTimeout            = 5 * time.Second
	DefaultRanges             = RangeFirst
	DefaultMaxInFlight        = 256
	DefaultMaxInFlightPerHost = 4
	DefaultFailuresBeforeDown = 1
	// MaxRangePorts caps how many ports `ranges: all` expands one range to.
	MaxRangePorts = 1024
)

// RangeMode says how a port range such as "6910-6930" is checked.
type RangeMode string

// Range modes.
const (
	RangeFirst RangeMode = "first" // check the first port of the range (the default)
	RangeAll   RangeMode = "all"   // one target per port, at most MaxRangePorts
	RangeSkip  RangeMode = "skip"  // do not check ranges; list them as skipped
)

// Valid reports whether m is a known range mode ("" inherits).
func (m RangeMode) Valid() bool { return m == "" || m == RangeFirst || m == RangeAll || m == RangeSkip }

// ReservedLabels are the per-target label names of the metrics; the
// site-wide `labels` must not reuse them.
var ReservedLabels = []string{
	"product", "flow", "source", "destination", "target", "protocol", "port",
	"check", "outcome", "phase", "site",
}

// Config is a parsed site configuration: which products run here, as which
// role, the hosts of the other roles, and how often to check. Build it with
// ParseConfig or LoadConfig (which record file:line for every setting so
// Plan's errors can name them), with ConfigFromFlags, or as a Go value.
type Config struct {
	// File is where the config came from; it prefixes error messages.
	File string
	// Site is a free-form name of the site or segment this instance watches.
	Site string
	// Labels are extra labels for every metric of this instance.
	Labels map[string]string
	// SelfAddresses are this instance's own addresses: hosts among them
	// are not probed, and the firewall request uses them as the source of
	// flows this instance originates.
	SelfAddresses []string
	// SourceAddress is the local address checks bind to ("" = any).
	SourceAddress string
	// IPFamily is "" (either, IPv4 first), "ip4" or "ip6".
	IPFamily  string
	Defaults  Defaults
	Scheduler SchedulerConfig
	Products  []*ProductConfig

	keys keyPos
}

// Defaults are the site-wide settings every product inherits.
type Defaults struct {
	Settings
	// Options holds raw check options by check kind (e.g. "snmp").
	Options map[string]map[string]any
}

// Settings are the inheritable per-check settings. Zero values inherit
// (flow > role > product > defaults > built-in default).
type Settings struct {
	Interval time.Duration
	Timeout  time.Duration
	Ranges   RangeMode
}

// SchedulerConfig holds the scheduler settings of the `scheduler:` block.
type SchedulerConfig struct {
	// MaxInFlight caps the checks running at once.
	MaxInFlight int
	// MaxInFlightPerHost caps the checks running at once against one host.
	MaxInFlightPerHost int
	// Jitter is the fraction (0..1) of the interval by which each run may
	// be moved at random.
	Jitter float64
	// FailingInterval re-checks a failing target this often (0 = off).
	FailingInterval time.Duration
	// FailuresBeforeDown is the number of consecutive failures before the
	// exported verdict flips to failed.
	FailuresBeforeDown int
}

// ProductConfig is one product of the site.
type ProductConfig struct {
	Name string
	// Self are the roles this instance runs as: it checks the flows whose
	// source is one of them.
	Self []string
	Settings
	// Only, when not empty, plans only these flows.
	Only []string
	// Exclude lists flows this site does not use.
	Exclude []string
	// Options holds raw check options by check kind.
	Options map[string]map[string]any
	Roles   []*RoleConfig
	// Flows are per-flow overrides, by catalog (or extra) flow id.
	Flows []*FlowConfig
	// ExtraFlows are the site's own flows, beside the catalog's.
	ExtraFlows []*ExtraFlow

	keys keyPos
}

// RoleConfig holds the hosts and settings of one role of a product.
type RoleConfig struct {
	Name  string
	Hosts []HostConfig
	Settings
	// Check replaces the check kind of every flow to this role.
	Check string
	// Options holds raw check options by check kind for flows to this role.
	Options map[string]map[string]any
	// Ports overrides the port of a flow to every host of this role.
	Ports map[string]int
	// Responder says the hosts of this role run `flowprobe listen`: tcp
	// flows use the tcp check and udp flows the udp check, both with
	// `responder: true`.
	Responder bool

	keys keyPos
}

// HostConfig is one host of a role: a DNS name or an IP address, with
// optional per-flow port overrides.
type HostConfig struct {
	Host  string
	Ports map[string]int

	keys keyPos
}

// FlowConfig overrides the settings of one flow.
type FlowConfig struct {
	ID string
	Settings
	Check string
	// Options are the raw options of the flow's check kind.
	Options map[string]any
	Expect  probe.Expect

	keys keyPos
}

// ExtraFlow is a flow of the site's own: the fields of a catalog flow plus
// the settings of a flow override.
type ExtraFlow struct {
	Flow   probe.Flow
	Config FlowConfig
}

// pos is a place in a config file.
type pos struct {
	file string
	line int
}

// keyPos records where each key of a block was set; "" is the block.
type keyPos map[string]pos

func (k keyPos) at(key string) pos {
	if p, ok := k[key]; ok {
		return p
	}
	return k[""]
}

func (k keyPos) has(key string) bool { _, ok := k[key]; return ok }

// ConfigError is one problem of a site config, placed at file:line and
// naming the product, role or flow it concerns.
type ConfigError struct {
	File string
	Line int
	Msg  string // with the product/role/flow context prefixed
}

func (e *ConfigError) Error() string {
	switch {
	case e.File != "" && e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	case e.File != "":
		return e.File + ": " + e.Msg
	}
	return e.Msg
}

func configError(p pos, ctx []string, format string, args ...any) error {
	var b strings.Builder
	for _, c := range ctx {
		if c != "" {
			b.WriteString(c)
			b.WriteString(": ")
		}
	}
	fmt.Fprintf(&b, format, args...)
	return &ConfigError{File: p.file, Line: p.line, Msg: b.String()}
}

// joinSorted joins errs in file and line order, so a user reads them from
// the top of the file down.
func joinSorted(errs []error) error {
	slices.SortStableFunc(errs, func(a, b error) int {
		var ea, eb *ConfigError
		if !errors.As(a, &ea) || !errors.As(b, &eb) {
			return 0
		}
		if c := strings.Compare(ea.File, eb.File); c != 0 {
			return c
		}
		return ea.Line - eb.Line
	})
	return errors.Join(errs...)
}

// LoadConfig reads and parses the site config at path.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	return ParseConfig(path, data)
}

// ParseConfig parses a site config strictly: unknown keys, bad values and
// inconsistent settings are errors, each naming filename:line and the
// product, role or flow; all of them are returned at once (errors.Join).
// References to the catalog (products, roles, flow ids) and check options
// are checked by Plan.
func ParseConfig(filename string, data []byte) (*Config, error) {
	p := &parser{file: filename}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, configError(pos{file: filename}, nil, "the config is empty")
		}
		return nil, p.syntaxError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, configError(pos{filename, extra.Line}, nil, "a second YAML document; a config is one document")
	} else if !errors.Is(err, io.EOF) {
		return nil, p.syntaxError(err)
	}
	cfg := &Config{File: filename}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	p.config(root, cfg)
	if errs := append(p.errs, cfg.validate()...); len(errs) > 0 {
		return nil, joinSorted(errs)
	}
	return cfg, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (p *parser) syntaxError(err error) error {
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		return configError(pos{p.file, line}, nil, "%s", m[2])
	}
	return configError(pos{file: p.file}, nil, "%s", strings.TrimPrefix(err.Error(), "yaml: "))
}

// parser walks the YAML node tree, collecting every error.
type parser struct {
	file string
	errs []error
}

func (p *parser) pos(n *yaml.Node) pos { return pos{p.file, n.Line} }

func (p *parser) errorf(n *yaml.Node, ctx []string, format string, args ...any) {
	p.errs = append(p.errs, configError(p.pos(n), ctx, format, args...))
}

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// fields walks a mapping, calling the handler of each known key and
// reporting unknown and duplicate keys. It records each key's position.
func (p *parser) fields(n *yaml.Node, ctx []string, what string, keys keyPos, handlers map[string]func(v *yaml.Node)) {
	n = resolve(n)
	keys[""] = p.pos(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(n, ctx, "%s must be a mapping", what)
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		h, ok := handlers[k.Value]
		if !ok {
			known := make([]string, 0, len(handlers))
			for name := range handlers {
				known = append(known, name)
			}
			slices.Sort(known)
			p.errorf(k, ctx, "unknown key %q in %s (known: %s)", k.Value, what, strings.Join(known, ", "))
			continue
		}
		if keys.has(k.Value) && k.Value != "" {
			p.errorf(k, ctx, "key %q is set twice in %s", k.Value, what)
			continue
		}
		keys[k.Value] = p.pos(k)
		h(v)
	}
}

func (p *parser) str(n *yaml.Node, ctx []string, key string, dst *string) {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		p.errorf(n, ctx, "%s must be a string", key)
		return
	}
	*dst = n.Value
}

func (p *parser) strList(n *yaml.Node, ctx []string, key string, dst *[]string) {
	if n.Kind == yaml.ScalarNode && !isNull(n) {
		*dst = []string{n.Value}
		return
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, ctx, "%s must be a string or a list of strings", key)
		return
	}
	for _, e := range n.Content {
		e = resolve(e)
		if e.Kind != yaml.ScalarNode || isNull(e) {
			p.errorf(e, ctx, "%s: each item must be a string", key)
			continue
		}
		*dst = append(*dst, e.Value)
	}
}

func (p *parser) duration(n *yaml.Node, ctx []string, key string, dst *time.Duration) {
	p.durationMin(n, ctx, key, dst, false)
}

// durationMin parses a duration; zero is accepted when zeroOK (it means
// "off").
func (p *parser) durationMin(n *yaml.Node, ctx []string, key string, dst *time.Duration, zeroOK bool) {
	if n.Kind != yaml.ScalarNode {
		p.errorf(n, ctx, "%s must be a duration such as 30s or 1m", key)
		return
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		p.errorf(n, ctx, "%s %q is not a duration such as 30s or 1m", key, n.Value)
		return
	}
	switch {
	case d < 0 && zeroOK:
		p.errorf(n, ctx, "%s must not be negative (0 turns it off), not %s", key, n.Value)
		return
	case d <= 0 && !zeroOK:
		p.errorf(n, ctx, "%s must be greater than 0, not %s", key, n.Value)
		return
	}
	*dst = d
}

func (p *parser) integer(n *yaml.Node, ctx []string, key string, dst *int) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		p.errorf(n, ctx, "%s must be an integer, not %q", key, n.Value)
		return
	}
	v, err := strconv.Atoi(n.Value)
	if err != nil {
		p.errorf(n, ctx, "%s must be an integer, not %q", key, n.Value)
		return
	}
	*dst = v
}

func (p *parser) boolean(n *yaml.Node, ctx []string, key string, dst *bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		p.errorf(n, ctx, "%s must be true or false, not %q", key, n.Value)
		return
	}
	*dst = n.Value == "true"
}

func (p *parser) rawOptions(n *yaml.Node, ctx []string, key string) map[string]any {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(n, ctx, "%s must be a mapping", key)
		return nil
	}
	var m map[string]any
	if err := n.Decode(&m); err != nil {
		p.errorf(n, ctx, "%s: %v", key, err)
		return nil
	}
	return m
}

// kindOptions parses `options: {kind: {...}}`, recording each kind's line
// in keys under "options.<kind>".
func (p *parser) kindOptions(n *yaml.Node, ctx []string, keys keyPos) map[string]map[string]any {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(n, ctx, "options must be a mapping of check kind to its options, e.g. options: {snmp: {version: 2c}}")
		return nil
	}
	out := map[string]map[string]any{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		if _, dup := out[k.Value]; dup {
			p.errorf(k, ctx, "options for check kind %q are set twice", k.Value)
			continue
		}
		keys["options."+k.Value] = p.pos(k)
		if v.Kind != yaml.MappingNode && !isNull(v) {
			p.errorf(v, ctx, "options.%s must be a mapping of %s check options", k.Value, k.Value)
			continue
		}
		out[k.Value] = p.rawOptions(v, ctx, "options."+k.Value)
	}
	return out
}

// portMap parses `ports: {flow-id: 8443}`, recording "ports.<flow>".
func (p *parser) portMap(n *yaml.Node, ctx []string, keys keyPos) map[string]int {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(n, ctx, "ports must be a mapping of flow id to port, e.g. ports: {web-console: 8443}")
		return nil
	}
	out := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		if _, dup := out[k.Value]; dup {
			p.errorf(k, ctx, "port of flow %q is set twice", k.Value)
			continue
		}
		keys["ports."+k.Value] = p.pos(k)
		port := 0
		p.integer(v, ctx, "port of flow "+k.Value, &port)
		out[k.Value] = port
	}
	return out
}

func (p *parser) settings(ctx []string, s *Settings) map[string]func(*yaml.Node) {
	return map[string]func(*yaml.Node){
		"interval": func(v *yaml.Node) { p.duration(v, ctx, "interval", &s.Interval) },
		"timeout":  func(v *yaml.Node) { p.duration(v, ctx, "timeout", &s.Timeout) },
		"ranges": func(v *yaml.Node) {
			var r string
			p.str(v, ctx, "ranges", &r)
			s.Ranges = RangeMode(r)
		},
	}
}

func merge(a, b map[string]func(*yaml.Node)) map[string]func(*yaml.Node) {
	for k, v := range b {
		a[k] = v
	}
	return a
}

func (p *parser) config(n *yaml.Node, c *Config) {
	c.keys = keyPos{}
	p.fields(n, nil, "the config", c.keys, map[string]func(*yaml.Node){
		"site": func(v *yaml.Node) { p.str(v, nil, "site", &c.Site) },
		"labels": func(v *yaml.Node) {
			if isNull(v) {
				return
			}
			if v.Kind != yaml.MappingNode {
				p.errorf(v, nil, "labels must be a mapping of label name to value")
				return
			}
			c.Labels = map[string]string{}
			for i := 0; i+1 < len(v.Content); i += 2 {
				k, val := v.Content[i], resolve(v.Content[i+1])
				c.keys["labels."+k.Value] = p.pos(k)
				if _, dup := c.Labels[k.Value]; dup {
					p.errorf(k, nil, "label %q is set twice", k.Value)
					continue
				}
				var s string
				p.str(val, nil, "label "+k.Value, &s)
				c.Labels[k.Value] = s
			}
		},
		"self_addresses": func(v *yaml.Node) { p.strList(v, nil, "self_addresses", &c.SelfAddresses) },
		"source_address": func(v *yaml.Node) { p.str(v, nil, "source_address", &c.SourceAddress) },
		"ip_family":      func(v *yaml.Node) { p.str(v, nil, "ip_family", &c.IPFamily) },
		"defaults": func(v *yaml.Node) {
			ctx := []string{"defaults"}
			keys := keyPos{}
			p.fields(v, ctx, "defaults", keys, merge(p.settings(ctx, &c.Defaults.Settings), map[string]func(*yaml.Node){
				"options": func(v *yaml.Node) { c.Defaults.Options = p.kindOptions(v, ctx, keys) },
			}))
			for k, v := range keys {
				c.keys["defaults."+k] = v
			}
		},
		"scheduler": func(v *yaml.Node) {
			s := &c.Scheduler
			ctx := []string{"scheduler"}
			keys := keyPos{}
			p.fields(v, ctx, "scheduler", keys, map[string]func(*yaml.Node){
				"max_in_flight":          func(v *yaml.Node) { p.integer(v, ctx, "max_in_flight", &s.MaxInFlight) },
				"max_in_flight_per_host": func(v *yaml.Node) { p.integer(v, ctx, "max_in_flight_per_host", &s.MaxInFlightPerHost) },
				"jitter": func(v *yaml.Node) {
					if v.Kind != yaml.ScalarNode || (v.Tag != "!!float" && v.Tag != "!!int") {
						p.errorf(v, ctx, "jitter must be a number between 0 and 1, not %q", v.Value)
						return
					}
					f, err := strconv.ParseFloat(v.Value, 64)
					if err != nil {
						p.errorf(v, ctx, "jitter must be a number between 0 and 1, not %q", v.Value)
						return
					}
					s.Jitter = f
				},
				"failing_interval": func(v *yaml.Node) {
					p.durationMin(v, ctx, "failing_interval", &s.FailingInterval, true)
				},
				"failures_before_down": func(v *yaml.Node) {
					p.integer(v, ctx, "failures_before_down", &s.FailuresBeforeDown)
				},
			})
			for k, v := range keys {
				c.keys["scheduler."+k] = v
			}
		},
		"products": func(v *yaml.Node) {
			if isNull(v) {
				return
			}
			if v.Kind != yaml.SequenceNode {
				p.errorf(v, nil, "products must be a list of product names or product blocks")
				return
			}
			for _, e := range v.Content {
				e = resolve(e)
				pc := &ProductConfig{keys: keyPos{"": p.pos(e)}}
				switch {
				case e.Kind == yaml.ScalarNode && !isNull(e):
					pc.Name = e.Value
					pc.keys["name"] = p.pos(e)
				case e.Kind == yaml.MappingNode:
					p.product(e, pc)
				default:
					p.errorf(e, nil, "each product must be a product name or a block with name: and its settings")
					continue
				}
				c.Products = append(c.Products, pc)
			}
		},
	})
}

func (p *parser) product(n *yaml.Node, pc *ProductConfig) {
	ctx := []string{"product"}
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == "name" {
				ctx = []string{"product " + resolve(n.Content[i+1]).Value}
			}
		}
	}
	p.fields(n, ctx, "a product", pc.keys, merge(p.settings(ctx, &pc.Settings), map[string]func(*yaml.Node){
		"name":    func(v *yaml.Node) { p.str(v, ctx, "name", &pc.Name) },
		"self":    func(v *yaml.Node) { p.strList(v, ctx, "self", &pc.Self) },
		"only":    func(v *yaml.Node) { p.strList(v, ctx, "only", &pc.Only) },
		"exclude": func(v *yaml.Node) { p.strList(v, ctx, "exclude", &pc.Exclude) },
		"options": func(v *yaml.Node) { pc.Options = p.kindOptions(v, ctx, pc.keys) },
		"roles": func(v *yaml.Node) {
			if isNull(v) {
				return
			}
			if v.Kind != yaml.MappingNode {
				p.errorf(v, ctx, "roles must be a mapping of role name to its hosts and settings")
				return
			}
			seen := map[string]bool{}
			for i := 0; i+1 < len(v.Content); i += 2 {
				k, rv := v.Content[i], resolve(v.Content[i+1])
				if seen[k.Value] {
					p.errorf(k, ctx, "role %q is set twice", k.Value)
					continue
				}
				seen[k.Value] = true
				rc := &RoleConfig{Name: k.Value, keys: keyPos{}}
				p.role(rv, append(ctx[:1:1], "role "+k.Value), rc)
				rc.keys["name"] = p.pos(k)
				pc.Roles = append(pc.Roles, rc)
			}
		},
		"flows": func(v *yaml.Node) {
			if isNull(v) {
				return
			}
			if v.Kind != yaml.MappingNode {
				p.errorf(v, ctx, "flows must be a mapping of flow id to its settings")
				return
			}
			seen := map[string]bool{}
			for i := 0; i+1 < len(v.Content); i += 2 {
				k, fv := v.Content[i], resolve(v.Content[i+1])
				if seen[k.Value] {
					p.errorf(k, ctx, "flow %q is set twice", k.Value)
					continue
				}
				seen[k.Value] = true
				fc := &FlowConfig{ID: k.Value, keys: keyPos{}}
				fctx := append(ctx[:1:1], "flow "+k.Value)
				p.fields(fv, fctx, "a flow", fc.keys, p.flowSettings(fctx, fc))
				fc.keys["id"] = p.pos(k)
				pc.Flows = append(pc.Flows, fc)
			}
		},
		"extra_flows": func(v *yaml.Node) {
			if isNull(v) {
				return
			}
			if v.Kind != yaml.SequenceNode {
				p.errorf(v, ctx, "extra_flows must be a list of flows")
				return
			}
			for _, e := range v.Content {
				e = resolve(e)
				ef := &ExtraFlow{}
				p.extraFlow(e, ctx, ef)
				pc.ExtraFlows = append(pc.ExtraFlows, ef)
			}
		},
	}))
}

func (p *parser) flowSettings(ctx []string, fc *FlowConfig) map[string]func(*yaml.Node) {
	return merge(p.settings(ctx, &fc.Settings), map[string]func(*yaml.Node){
		"check":   func(v *yaml.Node) { p.str(v, ctx, "check", &fc.Check) },
		"options": func(v *yaml.Node) { fc.Options = p.rawOptions(v, ctx, "options") },
		"expect": func(v *yaml.Node) {
			var s string
			p.str(v, ctx, "expect", &s)
			fc.Expect = probe.Expect(s)
		},
	})
}

func (p *parser) role(n *yaml.Node, ctx []string, rc *RoleConfig) {
	p.fields(n, ctx, "a role", rc.keys, merge(p.settings(ctx, &rc.Settings), map[string]func(*yaml.Node){
		"check":     func(v *yaml.Node) { p.str(v, ctx, "check", &rc.Check) },
		"options":   func(v *yaml.Node) { rc.Options = p.kindOptions(v, ctx, rc.keys) },
		"ports":     func(v *yaml.Node) { rc.Ports = p.portMap(v, ctx, rc.keys) },
		"responder": func(v *yaml.Node) { p.boolean(v, ctx, "responder", &rc.Responder) },
		"hosts": func(v *yaml.Node) {
			if isNull(v) {
				return
			}
			if v.Kind != yaml.SequenceNode {
				p.errorf(v, ctx, "hosts must be a list of names or addresses")
				return
			}
			for _, e := range v.Content {
				e = resolve(e)
				h := HostConfig{keys: keyPos{"": p.pos(e)}}
				switch {
				case e.Kind == yaml.ScalarNode && !isNull(e):
					h.Host = e.Value
				case e.Kind == yaml.MappingNode:
					p.fields(e, ctx, "a host", h.keys, map[string]func(*yaml.Node){
						"host":  func(v *yaml.Node) { p.str(v, ctx, "host", &h.Host) },
						"ports": func(v *yaml.Node) { h.Ports = p.portMap(v, ctx, h.keys) },
					})
					if h.Host == "" && !h.keys.has("host") {
						p.errorf(e, ctx, "a host block needs host: NAME-OR-ADDRESS")
					}
				default:
					p.errorf(e, ctx, "each host must be a name, an address or a block {host: ..., ports: {...}}")
					continue
				}
				rc.Hosts = append(rc.Hosts, h)
			}
		},
	}))
}

func (p *parser) extraFlow(n *yaml.Node, pctx []string, ef *ExtraFlow) {
	ctx := append(pctx[:len(pctx):len(pctx)], "extra flow")
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == "id" {
				ctx[len(ctx)-1] = "flow " + resolve(n.Content[i+1]).Value
			}
		}
	}
	fc := &ef.Config
	fc.keys = keyPos{}
	f := &ef.Flow
	f.File, f.Line = p.file, n.Line
	p.fields(n, ctx, "an extra flow", fc.keys, merge(p.flowSettings(ctx, fc), map[string]func(*yaml.Node){
		"id":          func(v *yaml.Node) { p.str(v, ctx, "id", &f.ID) },
		"source":      func(v *yaml.Node) { p.str(v, ctx, "source", &f.Source) },
		"destination": func(v *yaml.Node) { p.str(v, ctx, "destination", &f.Destination) },
		"hostname":    func(v *yaml.Node) { p.str(v, ctx, "hostname", &f.Hostname) },
		"purpose":     func(v *yaml.Node) { p.str(v, ctx, "purpose", &f.Purpose) },
		"app":         func(v *yaml.Node) { p.str(v, ctx, "app", &f.App) },
		"protocol": func(v *yaml.Node) {
			var s string
			p.str(v, ctx, "protocol", &s)
			f.Protocol = probe.Protocol(s)
		},
		"required": func(v *yaml.Node) {
			var s string
			p.str(v, ctx, "required", &s)
			f.Required = probe.Requirement(s)
		},
		"ports": func(v *yaml.Node) {
			items := []*yaml.Node{v}
			if v.Kind == yaml.SequenceNode {
				items = v.Content
			}
			for _, e := range items {
				e = resolve(e)
				if e.Kind != yaml.ScalarNode || isNull(e) {
					p.errorf(e, ctx, "ports: each item must be a port, a LOW-HIGH range, dynamic or ephemeral")
					continue
				}
				ps, err := probe.ParsePortSpec(e.Value)
				if err != nil {
					p.errorf(e, ctx, "ports: %v", err)
					continue
				}
				f.Ports = append(f.Ports, ps)
			}
		},
	}))
	fc.ID = f.ID
}

var labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// Validate checks a Config's values on their own (without the catalog):
// labels, addresses, durations, hosts, ports, scheduler limits. It fills
// in the scheduler defaults. ParseConfig and ConfigFromFlags call it.
func (c *Config) Validate() error { return joinSorted(c.validate()) }

func (c *Config) validate() []error {
	var errs []error
	at := func(key string) pos {
		p := c.keys.at(key)
		if p.file == "" {
			p.file = c.File
		}
		return p
	}
	fail := func(key string, ctx []string, format string, args ...any) {
		errs = append(errs, configError(at(key), ctx, format, args...))
	}

	names := make([]string, 0, len(c.Labels))
	for k := range c.Labels {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		switch {
		case !labelName.MatchString(k) || strings.HasPrefix(k, "__"):
			fail("labels."+k, nil, "label name %q is not a valid Prometheus label name", k)
		case slices.Contains(ReservedLabels, k):
			fail("labels."+k, nil, "label name %q is used by flowprobe's own metrics labels (%s)", k, strings.Join(ReservedLabels, ", "))
		}
	}
	for _, a := range c.SelfAddresses {
		if err := checkHost(a); err != nil {
			fail("self_addresses", nil, "self_addresses: %v", err)
		}
	}
	if c.SourceAddress != "" {
		if _, err := netip.ParseAddr(c.SourceAddress); err != nil {
			fail("source_address", nil, "source_address %q is not an IP address", c.SourceAddress)
		}
	}
	if c.IPFamily != "" && c.IPFamily != "ip4" && c.IPFamily != "ip6" {
		fail("ip_family", nil, "ip_family %q: want ip4 or ip6 (or leave it out for either)", c.IPFamily)
	}

	s := &c.Scheduler
	if !c.keys.has("scheduler.max_in_flight") && s.MaxInFlight == 0 {
		s.MaxInFlight = DefaultMaxInFlight
	}
	if !c.keys.has("scheduler.max_in_flight_per_host") && s.MaxInFlightPerHost == 0 {
		s.MaxInFlightPerHost = DefaultMaxInFlightPerHost
	}
	if !c.keys.has("scheduler.failures_before_down") && s.FailuresBeforeDown == 0 {
		s.FailuresBeforeDown = DefaultFailuresBeforeDown
	}
	sctx := []string{"scheduler"}
	if s.MaxInFlight < 1 {
		fail("scheduler.max_in_flight", sctx, "max_in_flight must be at least 1, not %d", s.MaxInFlight)
	}
	if s.MaxInFlightPerHost < 1 {
		fail("scheduler.max_in_flight_per_host", sctx, "max_in_flight_per_host must be at least 1, not %d", s.MaxInFlightPerHost)
	} else if s.MaxInFlight >= 1 && s.MaxInFlightPerHost > s.MaxInFlight {
		fail("scheduler.max_in_flight_per_host", sctx, "max_in_flight_per_host %d is more than max_in_flight %d", s.MaxInFlightPerHost, s.MaxInFlight)
	}
	if s.Jitter < 0 || s.Jitter > 1 {
		fail("scheduler.jitter", sctx, "jitter must be between 0 and 1, not %g", s.Jitter)
	}
	if s.FailingInterval < 0 {
		fail("scheduler.failing_interval", sctx, "failing_interval must not be negative")
	}
	if s.FailuresBeforeDown < 1 {
		fail("scheduler.failures_before_down", sctx, "failures_before_down must be at least 1, not %d", s.FailuresBeforeDown)
	}

	dctx := []string{"defaults"}
	errs = append(errs, checkSettings(c.Defaults.Settings, Settings{}, func(k string) pos { return at("defaults." + k) }, dctx)...)

	seen := map[string]bool{}
	for _, pc := range c.Products {
		errs = append(errs, c.validateProduct(pc, seen)...)
	}
	return errs
}

// checkSettings checks one level of settings against what it inherits.
func checkSettings(own, inherited Settings, at func(string) pos, ctx []string) []error {
	var errs []error
	if own.Interval < 0 {
		errs = append(errs, configError(at("interval"), ctx, "interval must be greater than 0"))
	}
	if own.Timeout < 0 {
		errs = append(errs, configError(at("timeout"), ctx, "timeout must be greater than 0"))
	}
	if !own.Ranges.Valid() {
		errs = append(errs, configError(at("ranges"), ctx, "ranges %q: want first, all or skip", own.Ranges))
	}
	if own.Interval == 0 && own.Timeout == 0 {
		return errs
	}
	eff := resolveSettings(own, inherited)
	if eff.Timeout >= eff.Interval {
		key, from := "timeout", ""
		if own.Timeout == 0 {
			key, from = "interval", " (inherited)"
		}
		errs = append(errs, configError(at(key), ctx, "timeout %s%s must be shorter than interval %s", eff.Timeout, from, eff.Interval))
	}
	return errs
}

// resolveSettings fills the zero values of s from parent, then from the
// built-in defaults.
func resolveSettings(s, parent Settings) Settings {
	if s.Interval == 0 {
		s.Interval = parent.Interval
	}
	if s.Timeout == 0 {
		s.Timeout = parent.Timeout
	}
	if s.Ranges == "" {
		s.Ranges = parent.Ranges
	}
	if s.Interval == 0 {
		s.Interval = DefaultInterval
	}
	if s.Timeout == 0 {
		s.Timeout = DefaultTimeout
	}
	if s.Ranges == "" {
		s.Ranges = DefaultRanges
	}
	return s
}

func (c *Config) atOf(k keyPos) func(string) pos {
	return func(key string) pos {
		p := k.at(key)
		if p.file == "" {
			p.file = c.File
		}
		return p
	}
}

func (c *Config) validateProduct(pc *ProductConfig, seen map[string]bool) []error {
	var errs []error
	at := c.atOf(pc.keys)
	ctx := []string{"product " + pc.Name}
	if pc.Name == "" {
		errs = append(errs, configError(at("name"), nil, "a product needs a name"))
		ctx = []string{"product"}
	} else if seen[pc.Name] {
		errs = append(errs, configError(at("name"), ctx, "the product is listed twice"))
	}
	seen[pc.Name] = true
	productSettings := resolveSettings(pc.Settings, c.Defaults.Settings)
	errs = append(errs, checkSettings(pc.Settings, resolveSettings(c.Defaults.Settings, Settings{}), at, ctx)...)

	for _, rc := range pc.Roles {
		rat := c.atOf(rc.keys)
		rctx := append(ctx[:1:1], "role "+rc.Name)
		errs = append(errs, checkSettings(rc.Settings, productSettings, rat, rctx)...)
		if rc.Responder && rc.Check != "" {
			errs = append(errs, configError(rat("check"), rctx, "check %q conflicts with responder: true (a responder role is checked with tcp or udp)", rc.Check))
		}
		hosts := map[string]bool{}
		for _, h := range rc.Hosts {
			hat := c.atOf(h.keys)
			if err := checkHost(h.Host); err != nil {
				errs = append(errs, configError(hat("host"), rctx, "%v", err))
			} else if key := hostKey(h.Host); hosts[key] {
				errs = append(errs, configError(hat("host"), rctx, "host %s is listed twice", h.Host))
			} else {
				hosts[key] = true
			}
			errs = append(errs, checkPorts(h.Ports, hat, rctx)...)
		}
		errs = append(errs, checkPorts(rc.Ports, rat, rctx)...)
	}
	ids := map[string]bool{}
	for _, fc := range pc.Flows {
		fat := c.atOf(fc.keys)
		fctx := append(ctx[:1:1], "flow "+fc.ID)
		if ids[fc.ID] {
			errs = append(errs, configError(fat("id"), fctx, "flow %q is set twice", fc.ID))
		}
		ids[fc.ID] = true
		errs = append(errs, checkSettings(fc.Settings, productSettings, fat, fctx)...)
		if !fc.Expect.Valid() {
			errs = append(errs, configError(fat("expect"), fctx, "expect %q: want allow or deny", fc.Expect))
		}
	}
	extra := map[string]bool{}
	for _, ef := range pc.ExtraFlows {
		errs = append(errs, c.validateExtraFlow(ef, ctx, productSettings, extra)...)
	}
	return errs
}

func (c *Config) validateExtraFlow(ef *ExtraFlow, pctx []string, parent Settings, seen map[string]bool) []error {
	var errs []error
	fc, f := &ef.Config, &ef.Flow
	at := c.atOf(fc.keys)
	ctx := append(pctx[:1:1], "flow "+f.ID)
	fail := func(key, format string, args ...any) {
		errs = append(errs, configError(at(key), ctx, format, args...))
	}
	switch {
	case f.ID == "":
		ctx[1] = "extra flow"
		fail("", "an extra flow needs an id")
	case seen[f.ID]:
		fail("id", "extra flow %q is listed twice", f.ID)
	}
	seen[f.ID] = true
	if f.Source == "" {
		fail("", "an extra flow needs a source role")
	}
	if f.Destination == "" && f.Hostname == "" {
		fail("", "an extra flow needs a destination role or a hostname")
	}
	if f.Hostname != "" {
		if err := checkHost(f.Hostname); err != nil {
			fail("hostname", "hostname: %v", err)
		}
	}
	switch {
	case f.Protocol == "":
		fail("", "an extra flow needs a protocol (tcp, udp or icmp)")
	case !f.Protocol.Valid():
		fail("protocol", "protocol %q: want tcp, udp or icmp", f.Protocol)
	case f.Protocol == probe.ICMP && len(f.Ports) > 0:
		fail("ports", "an icmp flow has no ports")
	case f.Protocol != probe.ICMP && len(f.Ports) == 0 && !fc.keys.has("ports"):
		fail("", "a %s flow needs ports", f.Protocol)
	}
	if f.Required == "" {
		f.Required = probe.Required
	} else if !f.Required.Valid() {
		fail("required", "required %q: want required, optional or conditional", f.Required)
	}
	if !fc.Expect.Valid() {
		fail("expect", "expect %q: want allow or deny", fc.Expect)
	}
	errs = append(errs, checkSettings(fc.Settings, parent, at, ctx)...)
	return errs
}

func checkPorts(ports map[string]int, at func(string) pos, ctx []string) []error {
	var errs []error
	ids := make([]string, 0, len(ports))
	for id := range ports {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if p := ports[id]; p < 1 || p > 65535 {
			errs = append(errs, configError(at("ports."+id), ctx, "port %d of flow %s is outside 1..65535", p, id))
		}
	}
	return errs
}

// checkHost accepts an IP address or a DNS name.
func checkHost(h string) error {
	if h == "" {
		return errors.New("empty host")
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return nil
	}
	name := strings.TrimSuffix(h, ".")
	if len(name) > 253 || name == "" {
		return fmt.Errorf("host %q is neither an IP address nor a valid DNS name", h)
	}
	for label := range strings.SplitSeq(name, ".") {
		if !validLabel(label) {
			return fmt.Errorf("host %q is neither an IP address nor a valid DNS name", h)
		}
	}
	return nil
}

func validLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for _, r := range l {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// hostKey normalises a host for comparisons: the canonical text of an
// address, or the lower-case name without a trailing dot.
func hostKey(h string) string {
	if a, err := netip.ParseAddr(h); err == nil {
		return a.String()
	}
	return strings.ToLower(strings.TrimSuffix(h, "."))
}

// Flags is what a command line can say instead of a config file, for one
// product (`flowprobe check --product P --self ROLE --host ROLE=ADDR --flow ID`).
type Flags struct {
	Product string
	// Self are the roles this instance runs as.
	Self []string
	// Hosts are ROLE=HOST[,HOST...] items; a role may repeat.
	Hosts []string
	// Responders are roles whose hosts run `flowprobe listen`.
	Responders []string
	// Flows, when not empty, are the only flows planned; Check, Options
	// and Expect apply to them.
	Flows   []string
	Exclude []string
	// Timeout of every check (0 = the default). The interval, irrelevant
	// to a one-shot run, is made longer than the timeout.
	Timeout time.Duration
	Ranges  RangeMode
	Check   string
	Options map[string]any
	Expect  probe.Expect
	// SelfAddresses, SourceAddress and IPFamily are as in Config.
	SelfAddresses []string
	SourceAddress string
	IPFamily      string
}

// flagsFile names the command line in error messages.
const flagsFile = "command line"

// ConfigFromFlags builds and validates a Config for one product from
// command-line values. Its errors name the flag at fault.
func ConfigFromFlags(f Flags) (*Config, error) {
	c := &Config{
		File: flagsFile, SelfAddresses: f.SelfAddresses, SourceAddress: f.SourceAddress, IPFamily: f.IPFamily,
		keys: keyPos{},
	}
	c.Defaults.Timeout = f.Timeout
	c.Defaults.Ranges = f.Ranges
	if f.Timeout >= DefaultInterval {
		c.Defaults.Interval = 2 * f.Timeout
	}
	var errs []error
	if f.Product == "" {
		errs = append(errs, configError(pos{file: flagsFile}, nil, "--product is required"))
	}
	pc := &ProductConfig{Name: f.Product, Self: f.Self, Only: f.Flows, Exclude: f.Exclude, keys: keyPos{}}
	c.Products = []*ProductConfig{pc}
	roles := map[string]*RoleConfig{}
	role := func(name string) *RoleConfig {
		rc, ok := roles[name]
		if !ok {
			rc = &RoleConfig{Name: name, keys: keyPos{}}
			roles[name] = rc
			pc.Roles = append(pc.Roles, rc)
		}
		return rc
	}
	for _, h := range f.Hosts {
		name, hosts, ok := strings.Cut(h, "=")
		if !ok || name == "" || hosts == "" {
			errs = append(errs, configError(pos{file: flagsFile}, nil, "--host %q: want ROLE=HOST[,HOST...]", h))
			continue
		}
		rc := role(name)
		for host := range strings.SplitSeq(hosts, ",") {
			rc.Hosts = append(rc.Hosts, HostConfig{Host: strings.TrimSpace(host)})
		}
	}
	for _, r := range f.Responders {
		role(r).Responder = true
	}
	if f.Check != "" || len(f.Options) > 0 || f.Expect != "" {
		if len(f.Flows) == 0 {
			errs = append(errs, configError(pos{file: flagsFile}, nil, "--check, --set and --expect need --flow"))
		}
		for _, id := range f.Flows {
			pc.Flows = append(pc.Flows, &FlowConfig{ID: id, Check: f.Check, Options: f.Options, Expect: f.Expect, keys: keyPos{}})
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}
