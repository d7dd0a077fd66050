package site

import (
	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/probe/catalog"

	"maps"
	"slices"
	"strings"
)

// Binder binds flows to check kinds and decodes check options. The checks
// package implements it (checks.Binder); probe never imports checks.
type Binder interface {
	// KindFor returns the check kind that proves a flow with application
	// hint app over proto, and the options the hint implies for that kind
	// (e.g. ldaps → ldap with mode: ldaps), or nil.
	KindFor(app string, proto probe.Protocol) (kind string, hint map[string]any)
	// Known reports whether kind is a check kind.
	Known(kind string) bool
	// Decode decodes raw options for kind strictly and validates them.
	Decode(kind string, raw map[string]any) (any, error)
	// ResponderKind returns the check kind, and the options it needs, for
	// a flow over proto to a host running `flowprobe listen`; ok is false
	// when a responder does not change how proto is checked (icmp).
	ResponderKind(proto probe.Protocol) (kind string, options map[string]any, ok bool)
}

// PlanResult is the expansion of a site config against the catalog.
type PlanResult struct {
	// Targets are the checks this instance runs, sorted by ID.
	Targets []probe.Target
	// Skipped lists, in catalog order, what was not planned and why.
	Skipped []Skip
	// Printed lists, in catalog order, the planned flows whose vendor
	// document prints another transport or port than the one checked.
	Printed []PrintedFlow
	// rules hold the firewall request, expanded by Rules.
	rules []ruleSet
}

// Plan expands cfg against the catalog into targets. Unknown products,
// roles and flows, and check options the binder rejects, are errors naming
// the config's file:line and the flow; all are returned at once.
func Plan(cat *catalog.Catalog, cfg *Config, b Binder) (*PlanResult, error) {
	return PlanProducts(cat.Products, cfg, b)
}

// PlanProducts is Plan over a list of products.
func PlanProducts(products []*probe.Product, cfg *Config, b Binder) (*PlanResult, error) {
	pl := &planner{cfg: cfg, b: b, res: &PlanResult{}, self: map[string]bool{}, maxTargets: cfg.MaxTargets,
		usedKinds: map[string]bool{}, local: map[string]bool{}}
	if pl.maxTargets == 0 {
		pl.maxTargets = DefaultMaxTargets
	}
	for _, a := range cfg.SelfAddresses {
		pl.self[hostKey(a)] = true
	}
	for _, a := range cfg.LocalAddresses {
		pl.local[hostKey(a)] = true
	}
	byName := map[string]*probe.Product{}
	var known []string
	for _, p := range products {
		byName[p.Name] = p
		known = append(known, p.Name)
	}
	slices.Sort(known)
	pl.checkKinds(cfg.Defaults.Options, cfg.keys, "defaults.", []string{"defaults"})
	for _, pc := range cfg.Products {
		prod, ok := byName[pc.Name]
		if !ok {
			if pc.Name != "" {
				pl.fail(pc.keys, "name", nil, "unknown product %q (known: %s)", pc.Name, strings.Join(known, ", "))
			}
			continue
		}
		pl.product(prod, pc)
	}
	pl.checkUnusedDefaults()
	if pl.planned > pl.maxTargets {
		pl.fail(cfg.keys, "max_targets", nil, "the config plans %d targets, more than max_targets %d; raise max_targets or plan fewer hosts, flows or ports", pl.planned, pl.maxTargets)
		return nil, joinSorted(pl.errs)
	}
	slices.SortFunc(pl.res.Targets, func(a, b probe.Target) int { return strings.Compare(a.ID, b.ID) })
	pl.res.Targets = slices.CompactFunc(pl.res.Targets, func(a, b probe.Target) bool { return a.ID == b.ID })
	if fi := cfg.Scheduler.FailingInterval; fi > 0 {
		for _, t := range pl.res.Targets {
			if fi <= t.Timeout {
				pl.fail(cfg.keys, "scheduler.failing_interval", []string{"scheduler"},
					"failing_interval %s must be longer than the timeout %s of flow %s of %s", fi, t.Timeout, t.Flow, t.Product)
				break
			}
		}
	}
	if len(pl.errs) > 0 {
		return nil, joinSorted(pl.errs)
	}
	return pl.res, nil
}

type planner struct {
	// planned counts the targets of the config, built or not; maxTargets
	// is the config's ceiling.
	planned, maxTargets int

	cfg  *Config
	b    Binder
	res  *PlanResult
	errs []error
	self map[string]bool
	// reported holds the option errors already reported; usedKinds the
	// check kinds some flow of any product was bound to.
	reported  map[string]bool
	usedKinds map[string]bool
	// local holds the hosts of cfg.LocalAddresses.
	local map[string]bool
	// fp fingerprints the targets; it reads each option file once per plan.
	fp probe.Fingerprinter
}

func (pl *planner) fail(k keyPos, key string, ctx []string, format string, args ...any) {
	pl.errs = append(pl.errs, configError(pl.cfg.atOf(k)(key), ctx, format, args...))
}

func (pl *planner) checkKinds(opts map[string]map[string]any, k keyPos, prefix string, ctx []string) {
	for _, kind := range slices.Sorted(maps.Keys(opts)) {
		if !pl.b.Known(kind) {
			pl.fail(k, prefix+"options."+kind, ctx, "options: unknown check kind %q", kind)
		}
	}
}

// productPlan is the state of planning one product.
type productPlan struct {
	*planner
	prod  *probe.Product
	pc    *ProductConfig
	ctx   []string
	flows []*probe.Flow
	// flowCfg holds the override of each flow id (extra flows: their own).
	flowCfg map[string]*FlowConfig
	roles   map[string]*RoleConfig
	self    map[string]bool
	extra   map[string]bool // ids of the site's own flows
	// usedKinds are the check kinds the product's flows were bound to.
	usedKinds map[string]bool
}

func (pl *planner) product(prod *probe.Product, pc *ProductConfig) {
	pp := &productPlan{
		planner: pl, prod: prod, pc: pc, ctx: []string{"product " + pc.Name},
		flowCfg: map[string]*FlowConfig{}, roles: map[string]*RoleConfig{}, self: map[string]bool{},
		extra: map[string]bool{}, usedKinds: map[string]bool{},
	}
	known := map[string]bool{}
	for _, r := range prod.Roles {
		known[r.Name] = true
	}
	ids := map[string]*probe.Flow{}
	for i := range prod.Flows {
		f := prod.Flows[i]
		f.Product = prod.Name
		known[f.Source] = true
		if f.Destination != "" {
			known[f.Destination] = true
		}
		pp.flows = append(pp.flows, &f)
		ids[f.ID] = &f
	}
	for _, ef := range pc.ExtraFlows {
		if ef.Flow.ID == "" {
			continue
		}
		if _, dup := ids[ef.Flow.ID]; dup {
			pl.fail(ef.Config.keys, "id", pp.ctx, "extra flow %q has the id of a catalog flow", ef.Flow.ID)
			continue
		}
		f := ef.Flow
		f.Product = prod.Name
		if f.Required == "" {
			f.Required = probe.Required
		}
		known[f.Source] = true
		if f.Destination != "" {
			known[f.Destination] = true
		}
		pp.flows = append(pp.flows, &f)
		ids[f.ID] = &f
		pp.flowCfg[f.ID] = &ef.Config
		pp.extra[f.ID] = true
	}
	roleNames := slices.Sorted(maps.Keys(known))
	flowIDs := func() string {
		out := make([]string, 0, len(pp.flows))
		for _, f := range pp.flows {
			out = append(out, f.ID)
		}
		return strings.Join(out, ", ")
	}

	for _, s := range pc.Self {
		if !known[s] {
			pl.fail(pc.keys, "self", pp.ctx, "self: unknown role %q (roles of %s: %s)", s, prod.Name, strings.Join(roleNames, ", "))
		}
		pp.self[s] = true
	}
	for _, rc := range pc.Roles {
		rctx := []string{pp.ctx[0], "role " + rc.Name}
		if !known[rc.Name] {
			pl.fail(rc.keys, "name", pp.ctx, "unknown role %q (roles of %s: %s)", rc.Name, prod.Name, strings.Join(roleNames, ", "))
			continue
		}
		pp.roles[rc.Name] = rc
		if rc.Check != "" && !pl.b.Known(rc.Check) {
			pl.fail(rc.keys, "check", rctx, "unknown check kind %q", rc.Check)
		}
		pl.checkKinds(rc.Options, rc.keys, "", rctx)
		pp.checkPortOverrides(rc.Ports, rc.PortRanges, rc.keys, rc.Name, rctx, ids)
		for _, h := range rc.Hosts {
			pp.checkPortOverrides(h.Ports, h.PortRanges, h.keys, rc.Name, rctx, ids)
		}
	}
	pl.checkKinds(pc.Options, pc.keys, "", pp.ctx)
	for _, list := range []struct {
		key string
		ids []string
	}{{"exclude", pc.Exclude}, {"only", pc.Only}, {"request_only", pc.RequestOnly}} {
		for _, id := range list.ids {
			if ids[id] == nil {
				pl.fail(pc.keys, list.key, pp.ctx, "%s: unknown flow %q (flows of %s: %s)", list.key, id, prod.Name, flowIDs())
			}
		}
	}
	for _, id := range pc.RequestOnly {
		if slices.Contains(pc.Exclude, id) {
			pl.fail(pc.keys, "request_only", pp.ctx, "request_only: flow %q is also in exclude, which drops it from the firewall request", id)
		}
	}
	for _, fc := range pc.Flows {
		if ids[fc.ID] == nil {
			pl.fail(fc.keys, "id", pp.ctx, "flows: unknown flow %q (flows of %s: %s)", fc.ID, prod.Name, flowIDs())
			continue
		}
		if _, extra := pp.flowCfg[fc.ID]; extra {
			pl.fail(fc.keys, "id", pp.ctx, "flows: %q is an extra flow; put its settings in its extra_flows entry", fc.ID)
			continue
		}
		pp.flowCfg[fc.ID] = fc
	}
	for _, f := range pp.flows {
		pp.flow(f)
	}
	pp.checkUnusedOptions()
}

func (pp *productPlan) checkPortOverrides(ports map[string]int, ranges map[string]probe.PortSpec, k keyPos, role string, ctx []string, ids map[string]*probe.Flow) {
	all := map[string]probe.PortSpec{}
	for id, p := range ports {
		all[id] = probe.PortSpec{Kind: probe.PortFixed, Low: p, High: p}
	}
	maps.Copy(all, ranges)
	for _, id := range slices.Sorted(maps.Keys(all)) {
		f, ps := ids[id], all[id]
		_, isRange := ranges[id]
		switch {
		case f == nil:
			pp.fail(k, "ports."+id, ctx, "ports: unknown flow %q", id)
		case f.Destination != role:
			pp.fail(k, "ports."+id, ctx, "ports: flow %s goes to role %s, not %s", id, f.Destination, role)
		case f.Protocol == probe.ICMP:
			pp.fail(k, "ports."+id, ctx, "ports: flow %s is icmp and has no port", id)
		case documentedRange(f, ps) != nil:
			// Narrowing a documented range is always allowed.
		case isRange:
			pp.fail(k, "ports."+id, ctx, "ports: range %s of flow %s does not lie inside a documented range of the flow (%s)", ps, id, portList(f.Ports))
		case !f.Configurable && !pp.extra[id]:
			pp.fail(k, "ports."+id, ctx, "ports: the vendor does not document the port of flow %s as configurable", id)
		}
	}
}

// documentedRange returns the range of f's ports that ps lies inside, or
// nil.
func documentedRange(f *probe.Flow, ps probe.PortSpec) *probe.PortSpec {
	for i, d := range f.Ports {
		if d.IsRange() && d.Low <= ps.Low && ps.High <= d.High {
			return &f.Ports[i]
		}
	}
	return nil
}

// portList is a flow's ports as text, "a, b".
func portList(ports []probe.PortSpec) string {
	out := make([]string, len(ports))
	for i, p := range ports {
		out[i] = p.String()
	}
	return strings.Join(out, ", ")
}

func destinationName(f *probe.Flow) string {
	if f.Destination != "" {
		return f.Destination
	}
	return f.Hostname
}

func (pp *productPlan) flow(f *probe.Flow) {
	pc := pp.pc
	if slices.Contains(pc.Exclude, f.ID) {
		pp.skip(f, SkipExcluded, "", "", "excluded in the config")
		return
	}
	if len(pc.Only) > 0 && !slices.Contains(pc.Only, f.ID) {
		return // not asked for: neither planned nor listed
	}
	fc := pp.flowCfg[f.ID]
	if fc == nil {
		fc = &FlowConfig{ID: f.ID}
	}
	rc := pp.roles[f.Destination]
	if len(f.Printed) > 0 {
		pp.res.Printed = append(pp.res.Printed, PrintedFlow{Product: f.Product, Flow: f.ID, Printed: f.PrintedNote()})
	}
	pp.rules(f, fc, rc)

	if slices.Contains(pc.RequestOnly, f.ID) {
		pp.skip(f, SkipRequestOnly, "", "", "request_only: in the firewall request, not checked")
		return
	}
	if !pp.self[f.Source] {
		if len(pc.Self) == 0 {
			pp.skip(f, SkipOtherSource, "", "", "self is not set, so this instance originates no flows of %s", f.Product)
		} else {
			pp.skip(f, SkipOtherSource, "", "", "source role %s is not this instance's role (self: %s); the instance running as %s checks it", f.Source, strings.Join(pc.Self, ", "), f.Source)
		}
		return
	}
	var hosts []HostConfig
	switch {
	case rc != nil && len(rc.Hosts) > 0:
		hosts = rc.Hosts
	case f.Hostname != "":
		hosts = []HostConfig{{Host: f.Hostname}}
	default:
		pp.skip(f, SkipNoHosts, "", "", "role %s has no hosts in the config", f.Destination)
		return
	}
	if rc == nil {
		rc = &RoleConfig{Name: f.Destination}
	}

	ctx := []string{pp.ctx[0], "flow " + f.ID}
	productSettings := resolveSettings(pc.Settings, pp.cfg.Defaults.Settings)
	roleSettings := resolveSettings(rc.Settings, productSettings)
	eff := resolveSettings(fc.Settings, roleSettings)
	if eff.Timeout >= eff.Interval {
		key := "timeout"
		if fc.Timeout == 0 {
			key = "interval"
		}
		pp.fail(fc.keys, key, ctx, "timeout %s must be shorter than interval %s (flow settings combined with role %s)", eff.Timeout, eff.Interval, rc.Name)
		return
	}

	kind, opts, raw, ok := pp.bind(f, fc, rc, ctx)
	if !ok {
		return
	}
	expect := fc.Expect
	if expect == "" {
		expect = probe.ExpectAllow
	}
	required := f.Required
	if required == "" {
		required = probe.Required
	}
	base := probe.Target{
		Product: f.Product, Flow: f.ID, Source: f.Source, Destination: destinationName(f),
		Protocol: f.Protocol, Check: kind, Options: opts, Expect: expect, Required: required,
		Interval: eff.Interval, Timeout: eff.Timeout,
		SourceAddress: pp.cfg.SourceAddress, IPFamily: pp.cfg.IPFamily,
	}
	// Two passes over the same loop: the first counts the targets (and
	// reports the skips), the second, when they fit under max_targets,
	// builds them.
	counting, n := true, 0
	add := func(host string, port int) {
		if counting {
			n++
			return
		}
		t := base
		t.Host, t.Port = host, port
		t.ID = probe.MakeID(t.Product, t.Flow, host, port, t.Protocol, t.Check)
		t.Fingerprint = pp.fp.Of(&t, raw)
		pp.res.Targets = append(pp.res.Targets, t)
	}
	skipped := map[string]bool{} // port specs already reported for this flow
	skipOnce := func(code SkipCode, port, format string, args ...any) {
		if !skipped[port] {
			skipped[port] = true
			pp.skip(f, code, "", port, format, args...)
		}
	}
	expand := func() {
		for _, h := range hosts {
			if k := hostKey(h.Host); pp.planner.self[k] || pp.planner.local[k] {
				if counting {
					reason := "is one of self_addresses"
					if !pp.planner.self[k] {
						reason = "is an address of this machine"
					}
					pp.skip(f, SkipOwnHost, h.Host, "", "%s %s", h.Host, reason)
				}
				continue
			}
			if f.Protocol == probe.ICMP {
				add(h.Host, 0)
				continue
			}
			for _, ps := range portsFor(f, rc, h) {
				switch {
				case ps.Kind == probe.PortDynamic:
					skipOnce(SkipDynamicPort, ps.String(), "the product chooses the port at run time")
				case ps.Kind == probe.PortEphemeral:
					skipOnce(SkipEphemeralPort, ps.String(), "the port comes from the OS ephemeral range")
				case !ps.IsRange():
					add(h.Host, ps.Low)
				case eff.Ranges == RangeSkip:
					skipOnce(SkipRange, ps.String(), "port range not checked (ranges: skip)")
				case eff.Ranges == RangeAll:
					if n := ps.High - ps.Low + 1; n > MaxRangePorts {
						if !skipped[ps.String()] {
							skipped[ps.String()] = true
							pp.fail(fc.keys, "ranges", ctx, "range %s has %d ports; ranges: all expands at most %d", ps, n, MaxRangePorts)
						}
						continue
					}
					for p := ps.Low; p <= ps.High; p++ {
						add(h.Host, p)
					}
				default:
					add(h.Host, ps.Low)
					skipOnce(SkipRangeRest, ps.String(), "only the first port %d of the range is checked (ranges: first)", ps.Low)
				}
			}
		}
	}
	expand()
	pp.planned += n
	if pp.planned > pp.maxTargets {
		return // refused in PlanProducts, with the total
	}
	counting = false
	pp.res.Targets = slices.Grow(pp.res.Targets, n)
	expand()
}

// portsFor returns the port specs of flow f at host h: the host's
// override, the role's override, or the flow's own ports. An override
// inside a documented range narrows that range and keeps the flow's other
// ports; any other override replaces the flow's ports.
func portsFor(f *probe.Flow, rc *RoleConfig, h HostConfig) []probe.PortSpec {
	for _, o := range []struct {
		ports  map[string]int
		ranges map[string]probe.PortSpec
	}{{h.Ports, h.PortRanges}, {rc.Ports, rc.PortRanges}} {
		r, ok := o.ranges[f.ID]
		if p, isPort := o.ports[f.ID]; isPort {
			r, ok = probe.PortSpec{Kind: probe.PortFixed, Low: p, High: p}, true
		}
		if !ok {
			continue
		}
		if documentedRange(f, r) != nil {
			return narrow(f, r)
		}
		return []probe.PortSpec{r}
	}
	return f.Ports
}

// narrow returns f's ports with the documented range that r lies inside
// replaced by r; the other ports stay.
func narrow(f *probe.Flow, r probe.PortSpec) []probe.PortSpec {
	d := documentedRange(f, r)
	out := make([]probe.PortSpec, 0, len(f.Ports))
	for i := range f.Ports {
		if &f.Ports[i] == d {
			out = append(out, r)
		} else {
			out = append(out, f.Ports[i])
		}
	}
	return out
}

// rules adds the firewall rules of flow f: every source host to every
// destination host, per port spec.
