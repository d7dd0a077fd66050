package site

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/probe/internal/yamlnode"
	"go.yaml.in/yaml/v3"
)

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
	cfg, errs := parseConfig(filename, data)
	if len(errs) > 0 {
		return nil, joinSorted(errs)
	}
	return cfg, nil
}

// parseConfig is ParseConfig returning the config as far as it could be
// read (nil when the YAML itself does not parse) beside its errors.
func parseConfig(filename string, data []byte) (*Config, []error) {
	root, err := yamlnode.Parse(filename, data, "a config")
	if err != nil {
		return nil, []error{err}
	}
	if root == nil {
		return nil, []error{configError(pos{file: filename}, nil, "the config is empty")}
	}
	p := &parser{file: filename, w: yamlnode.Walker{File: filename}}
	cfg := &Config{File: filename}
	p.config(root, cfg)
	return cfg, append(p.w.Errs, cfg.validate()...)
}

// parser walks the YAML node tree with the shared walker, collecting every
// error, and records where each key was set.
type parser struct {
	file string
	w    yamlnode.Walker
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
func (p *parser) portMap(n *yaml.Node, ctx []string, keys keyPos) (map[string]int, map[string]probe.PortSpec) {
	if isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(n, ctx, "ports must be a mapping of flow id to port, e.g. ports: {web-console: 8443}")
		return nil, nil
	}
	out := map[string]int{}
	var ranges map[string]probe.PortSpec
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		if _, dup := keys["ports."+k.Value]; dup {
			p.errorf(k, ctx, "port of flow %q is set twice", k.Value)
			continue
		}
		keys["ports."+k.Value] = p.pos(k)
		if yamlnode.IsString(v) && strings.Contains(v.Value, "-") {
			ps, err := probe.ParsePortSpec(v.Value)
			if err != nil || ps.Kind != probe.PortFixed {
				p.errorf(v, ctx, "port of flow %s: %q is not a port or a LOW-HIGH range", k.Value, v.Value)
				continue
			}
			if ranges == nil {
				ranges = map[string]probe.PortSpec{}
			}
			ranges[k.Value] = ps
			continue
		}
		port := 0
		p.integer(v, ctx, "port of flow "+k.Value, &port)
		out[k.Value] = port
	}
	return out, ranges
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
		"max_targets":    func(v *yaml.Node) { p.integer(v, nil, "max_targets", &c.MaxTargets) },
		"catalogs":       func(v *yaml.Node) { p.strList(v, nil, "catalogs", &c.Catalogs) },
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
		"trace": func(v *yaml.Node) {
			ctx := []string{"trace"}
			keys := keyPos{}
			auto := true
			p.fields(v, ctx, "trace", keys, map[string]func(*yaml.Node){
				"auto":       func(v *yaml.Node) { p.boolean(v, ctx, "auto", &auto) },
				"deny_flows": func(v *yaml.Node) { p.boolean(v, ctx, "deny_flows", &c.Trace.DenyFlows) },
			})
			c.Trace.NoAuto = !auto
			for k, v := range keys {
				c.keys["trace."+k] = v
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
				case yamlnode.IsString(e):
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
		"name":         func(v *yaml.Node) { p.str(v, ctx, "name", &pc.Name) },
		"self":         func(v *yaml.Node) { p.strList(v, ctx, "self", &pc.Self) },
		"only":         func(v *yaml.Node) { p.strList(v, ctx, "only", &pc.Only) },
		"exclude":      func(v *yaml.Node) { p.strList(v, ctx, "exclude", &pc.Exclude) },
		"request_only": func(v *yaml.Node) { p.strList(v, ctx, "request_only", &pc.RequestOnly) },
		"options":      func(v *yaml.Node) { pc.Options = p.kindOptions(v, ctx, pc.keys) },
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
		"ports":     func(v *yaml.Node) { rc.Ports, rc.PortRanges = p.portMap(v, ctx, rc.keys) },
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
				case yamlnode.IsString(e):
					h.Host = e.Value
				case e.Kind == yaml.MappingNode:
					p.fields(e, ctx, "a host", h.keys, map[string]func(*yaml.Node){
						"host":  func(v *yaml.Node) { p.str(v, ctx, "host", &h.Host) },
						"ports": func(v *yaml.Node) { h.Ports, h.PortRanges = p.portMap(v, ctx, h.keys) },
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
