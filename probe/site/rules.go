package site

import (
	"fmt"
	"strings"

	"github.com/flowprobe/flowprobe/probe"
)

// SkipCode says why a flow, a host or a port was not planned.
type SkipCode string

// Skip codes.
const (
	SkipExcluded      SkipCode = "excluded"       // listed in exclude
	SkipRequestOnly   SkipCode = "request_only"   // listed in request_only: requested, not checked
	SkipOtherSource   SkipCode = "other_source"   // source is a role this instance does not run as
	SkipNoHosts       SkipCode = "no_hosts"       // the destination role has no hosts
	SkipOwnHost       SkipCode = "own_host"       // the host is one of self_addresses
	SkipDynamicPort   SkipCode = "dynamic_port"   // the product picks the port at run time
	SkipEphemeralPort SkipCode = "ephemeral_port" // the port is from the OS ephemeral range
	SkipRange         SkipCode = "range"          // a range, with ranges: skip
	SkipRangeRest     SkipCode = "range_rest"     // the ports after the first of a range, with ranges: first
)

// Skip explains a flow (or one host or port of it) that Plan did not turn
// into targets.
type Skip struct {
	Product     string         `json:"product"`
	Flow        string         `json:"flow"`
	Source      string         `json:"source"`
	Destination string         `json:"destination"`
	Protocol    probe.Protocol `json:"protocol"`
	Host        string         `json:"host,omitempty"` // set when one host is skipped
	Port        string         `json:"port,omitempty"` // set when one port spec is skipped
	Code        SkipCode       `json:"code"`
	Reason      string         `json:"reason"`
}

// PrintedFlow names a planned flow whose vendor document prints another
// transport or port than the one checked and requested.
type PrintedFlow struct {
	Product string `json:"product"`
	Flow    string `json:"flow"`
	// Printed is "vendor table prints udp/25" (see probe.Flow.PrintedNote).
	Printed string `json:"printed"`
}

// Rule is one line of the firewall request: traffic a firewall must pass
// (or, for flows with expect: deny, must keep blocked).
type Rule struct {
	Action probe.Expect `json:"action"` // allow, or deny for expect: deny flows
	// Source and Destination are addresses or names, or "<role>" when the
	// config does not know the role's hosts.
	Source          string         `json:"source"`
	Destination     string         `json:"destination"`
	SourceRole      string         `json:"source_role"`
	DestinationRole string         `json:"destination_role"`
	Protocol        probe.Protocol `json:"protocol"`
	// Ports is a port, a LOW-HIGH range, "dynamic", "ephemeral", or "" for
	// icmp.
	Ports string `json:"ports"`
	// ICMPTypes names the ICMP messages of an icmp rule: the echo request
	// from the source and the echo reply back.
	ICMPTypes string            `json:"icmp_types,omitempty"`
	Product   string            `json:"product"`
	Flow      string            `json:"flow"`
	Required  probe.Requirement `json:"required"`
	Purpose   string            `json:"purpose"`
	// Condition is when a conditional flow is needed (the catalog's
	// condition); "" for required and optional flows.
	Condition string `json:"condition,omitempty"`
	Note      string `json:"note,omitempty"`
}

func (pp *productPlan) skip(f *probe.Flow, code SkipCode, host, port, format string, args ...any) {
	pp.res.Skipped = append(pp.res.Skipped, Skip{
		Product: f.Product, Flow: f.ID, Source: f.Source, Destination: destinationName(f),
		Protocol: f.Protocol, Host: host, Port: port, Code: code, Reason: fmt.Sprintf(format, args...),
	})
}

func (pp *productPlan) rules(f *probe.Flow, fc *FlowConfig, rc *RoleConfig) {
	var srcs []string
	if src := pp.roles[f.Source]; src != nil && len(src.Hosts) > 0 {
		for _, h := range src.Hosts {
			srcs = append(srcs, h.Host)
		}
	} else if pp.self[f.Source] && len(pp.cfg.SelfAddresses) > 0 {
		srcs = pp.cfg.SelfAddresses
	} else if pp.self[f.Source] && pp.cfg.SourceAddress != "" {
		srcs = []string{pp.cfg.SourceAddress}
	} else {
		srcs = []string{"<" + f.Source + ">"}
	}
	var dsts []HostConfig
	switch {
	case rc != nil && len(rc.Hosts) > 0:
		dsts = rc.Hosts
	case f.Hostname != "":
		dsts = []HostConfig{{Host: f.Hostname}}
	case pp.self[f.Destination] && len(pp.cfg.SelfAddresses) > 0:
		for _, a := range pp.cfg.SelfAddresses {
			dsts = append(dsts, HostConfig{Host: a})
		}
	default:
		dsts = []HostConfig{{Host: "<" + f.Destination + ">"}}
	}
	if rc == nil {
		rc = &RoleConfig{}
	}
	action := probe.ExpectAllow
	if fc.Expect == probe.ExpectDeny {
		action = probe.ExpectDeny
	}
	required := f.Required
	if required == "" {
		required = probe.Required
	}
	pp.res.rules = append(pp.res.rules, ruleSet{
		base: Rule{
			Action: action, SourceRole: f.Source, DestinationRole: destinationName(f),
			Protocol: f.Protocol, Product: f.Product, Flow: f.ID, Required: required, Purpose: f.Purpose,
			Condition: f.Condition,
		},
		flow: f, role: rc, srcs: srcs, dsts: dsts,
	})
}

// ruleSet is the firewall request of one flow before it is expanded: every
// source host to every destination host. Planning keeps this form, linear
// in the hosts; Rules expands it.
type ruleSet struct {
	base Rule
	flow *probe.Flow
	role *RoleConfig
	srcs []string
	dsts []HostConfig
}

// Rules returns the firewall request: every flow of the configured
// products, from every source host to every destination host, per port
// spec, whether or not this instance checks it. A flow within one role of
// n hosts (a cluster's nodes talking to each other) has n×(n-1) rules, so
// the request is built on demand rather than with the plan.
//
// Rules of several flows with the same action, source, destination,
// protocol and ports (a vendor table that lists one port in two sections)
// are one rule, whose Flow names every flow ("a, b") in plan order.
func (r *PlanResult) Rules() []Rule {
	return mergeRules(r.expandRules())
}

// mergeRules merges the rules that ask a firewall for the same traffic,
// keeping the first one's place and joining the others' flows, purposes,
// products, roles and notes; the merged rule is required if any of its
// flows is.
func mergeRules(rules []Rule) []Rule {
	type key struct {
		action                 probe.Expect
		src, dst, proto, ports string
	}
	at := make(map[key]int, len(rules))
	out := rules[:0]
	for _, rule := range rules {
		k := key{rule.Action, hostKey(rule.Source), hostKey(rule.Destination), string(rule.Protocol), rule.Ports}
		i, dup := at[k]
		if !dup {
			at[k] = len(out)
			out = append(out, rule)
			continue
		}
		m := &out[i]
		m.Flow = joinDistinct(m.Flow, rule.Flow, ", ")
		m.Product = joinDistinct(m.Product, rule.Product, ", ")
		m.SourceRole = joinDistinct(m.SourceRole, rule.SourceRole, ", ")
		m.DestinationRole = joinDistinct(m.DestinationRole, rule.DestinationRole, ", ")
		m.Purpose = joinDistinct(m.Purpose, rule.Purpose, "; ")
		m.Note = joinDistinct(m.Note, rule.Note, "; ")
		m.Condition = joinDistinct(m.Condition, rule.Condition, "; ")
		if requirementRank(rule.Required) > requirementRank(m.Required) {
			m.Required = rule.Required
		}
	}
	return out
}

// joinDistinct appends add to list (items separated by sep) unless it is
// empty or already there.
func joinDistinct(list, add, sep string) string {
	switch {
	case add == "":
		return list
	case list == "":
		return add
	}
	for _, item := range strings.Split(list, sep) {
		if item == add {
			return list
		}
	}
	return list + sep + add
}

// requirementRank orders requirements from the weakest to the strongest.
func requirementRank(r probe.Requirement) int {
	switch r {
	case probe.Required:
		return 2
	case probe.Conditional:
		return 1
	}
	return 0
}

// expandRules is the request with one rule per flow, source, destination
// and port spec.
func (r *PlanResult) expandRules() []Rule {
	var out []Rule
	for _, rs := range r.rules {
		f := rs.flow
		dstKeys := make([]string, len(rs.dsts))
		for i, d := range rs.dsts {
			dstKeys[i] = hostKey(d.Host)
		}
		for _, s := range rs.srcs {
			sk := hostKey(s)
			for i, d := range rs.dsts {
				if sk == dstKeys[i] && !strings.HasPrefix(s, "<") {
					continue // a host does not talk to itself through a firewall
				}
				rule := rs.base
				rule.Source, rule.Destination = s, d.Host
				printed := f.PrintedNote()
				rule.Note = joinNote(printed, f.Note)
				if f.Protocol == probe.ICMP {
					rule.ICMPTypes = ICMPEchoTypes
					out = append(out, rule)
					continue
				}
				for _, ps := range portsFor(f, rs.role, d) {
					rule.Ports = ps.String()
					switch ps.Kind {
					case probe.PortDynamic:
						rule.Note = joinNote(NoteDynamic, printed, f.Note)
					case probe.PortEphemeral:
						rule.Note = joinNote(NoteEphemeral, printed, f.Note)
					default:
						rule.Note = joinNote(printed, f.Note)
					}
					out = append(out, rule)
				}
			}
		}
	}
	return out
}

// What the firewall request says of ICMP rules and of ports that are not
// fixed numbers.
const (
	ICMPEchoTypes = "echo-request (type 8; IPv6 128), echo-reply back (type 0; IPv6 129)"
	NoteDynamic   = "dynamic: the product chooses the destination port at run time; see the vendor's documentation"
	NoteEphemeral = "ephemeral: the destination listens on a port its OS picks from its ephemeral range " +
		"(Linux 32768-60999, Windows 49152-65535 by default); open that range on the destination"
)

// joinNote joins the non-empty parts of a rule's note with "; ".
func joinNote(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, "; ")
}
