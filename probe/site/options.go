package site

// Binding flows to check kinds and decoding their options, and the
// errors of those options.

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/flowprobe/flowprobe/probe"
)

// bind chooses the check kind of a flow and decodes its options. The kind
// is, by precedence: the binder's responder kind for a responder role; the flow's check; the
// role's check; the kind named like the flow's app hint when the role, the
// product or the defaults give options for it (e.g. dns); the binder's
// kind for the app hint and transport. It returns the kind, the decoded
// options and the raw merged options they were decoded from.
func (pp *productPlan) bind(f *probe.Flow, fc *FlowConfig, rc *RoleConfig, ctx []string) (string, any, map[string]any, bool) {
	var kind string
	var hint map[string]any
	layers := []struct {
		opts map[string]map[string]any
		keys keyPos
		pfx  string
	}{
		{pp.cfg.Defaults.Options, pp.cfg.keys, "defaults."},
		{pp.pc.Options, pp.pc.keys, ""},
		{rc.Options, rc.keys, ""},
	}
	var respOpts map[string]any
	responder := false
	if rc.Responder {
		var k string
		if k, respOpts, responder = pp.b.ResponderKind(f.Protocol); responder {
			kind = k
		}
	}
	switch {
	case responder:
		if fc.Check != "" {
			pp.fail(fc.keys, "check", ctx, "check %q conflicts with responder: true of role %s", fc.Check, rc.Name)
			return "", nil, nil, false
		}
	case fc.Check != "":
		kind = fc.Check
		if !pp.b.Known(kind) {
			pp.fail(fc.keys, "check", ctx, "unknown check kind %q", kind)
			return "", nil, nil, false
		}
	case rc.Check != "":
		kind = rc.Check
		if !pp.b.Known(kind) {
			return "", nil, nil, false // reported with the role
		}
	default:
		kind, hint = pp.b.KindFor(f.App, f.Protocol)
		if f.App != "" && f.App != kind && pp.b.Known(f.App) {
			for _, l := range layers {
				if _, ok := l.opts[f.App]; ok {
					kind, hint = f.App, nil
				}
			}
		}
	}
	raw := map[string]any{}
	maps.Copy(raw, hint)
	where := pp.pc.keys.at("name")
	var from []string
	for _, l := range layers {
		if o, ok := l.opts[kind]; ok {
			maps.Copy(raw, o)
			p := pp.cfg.atOf(l.keys)(l.pfx + "options." + kind)
			where = p
			from = append(from, strconv.Itoa(p.line))
		}
	}
	if fc.Options != nil {
		maps.Copy(raw, fc.Options)
		p := pp.cfg.atOf(fc.keys)("options")
		where = p
		from = append(from, strconv.Itoa(p.line))
	}
	maps.Copy(raw, respOpts)
	pp.usedKinds[kind] = true
	pp.planner.usedKinds[kind] = true
	opts, err := pp.b.Decode(kind, raw)
	if err != nil {
		msg := err.Error()
		if len(from) > 1 {
			msg += " (options merged from lines " + strings.Join(from, ", ") + ")"
		}
		if fc.Options == nil {
			// The options of a role, the product or the defaults: the
			// error is theirs, reported once whatever the flows using them.
			ctx = pp.ctx
			if _, ok := rc.Options[kind]; ok && rc.Name != "" {
				ctx = []string{pp.ctx[0], "role " + rc.Name}
			}
		}
		pp.optionError(where, ctx, msg)
		return "", nil, nil, false
	}
	return kind, opts, raw, true
}

// optionError records an error of check options, once per place and
// message.
func (pl *planner) optionError(where pos, ctx []string, msg string) {
	err := configError(where, ctx, "%s", msg)
	if pl.reported == nil {
		pl.reported = map[string]bool{}
	}
	if !pl.reported[err.Error()] {
		pl.reported[err.Error()] = true
		pl.errs = append(pl.errs, err)
	}
}

// checkUnusedOptions decodes the options of the check kinds that no
// planned flow of the product used, so that a mistake in them is found
// before a flow needs them: the product's options over the defaults, and
// each role's over those.
func (pp *productPlan) checkUnusedOptions() {
	kinds := map[string]bool{}
	for k := range pp.pc.Options {
		kinds[k] = true
	}
	for _, rc := range pp.roles {
		for k := range rc.Options {
			kinds[k] = true
		}
	}
	for _, kind := range slices.Sorted(maps.Keys(kinds)) {
		if pp.usedKinds[kind] || !pp.b.Known(kind) {
			continue
		}
		pp.planner.usedKinds[kind] = true
		base := map[string]any{}
		maps.Copy(base, pp.cfg.Defaults.Options[kind])
		where := pp.cfg.atOf(pp.cfg.keys)("defaults.options." + kind)
		if o, ok := pp.pc.Options[kind]; ok {
			maps.Copy(base, o)
			where = pp.cfg.atOf(pp.pc.keys)("options." + kind)
			if _, err := pp.b.Decode(kind, base); err != nil {
				pp.optionError(where, pp.ctx, err.Error())
				continue
			}
		}
		for _, name := range slices.Sorted(maps.Keys(pp.roles)) {
			rc := pp.roles[name]
			o, ok := rc.Options[kind]
			if !ok {
				continue
			}
			raw := maps.Clone(base)
			maps.Copy(raw, o)
			if _, err := pp.b.Decode(kind, raw); err != nil {
				pp.optionError(pp.cfg.atOf(rc.keys)("options."+kind), []string{pp.ctx[0], "role " + name}, err.Error())
			}
		}
	}
}

// checkUnusedDefaults decodes the default options of kinds no product
// used.
func (pl *planner) checkUnusedDefaults() {
	for _, kind := range slices.Sorted(maps.Keys(pl.cfg.Defaults.Options)) {
		if pl.usedKinds[kind] || !pl.b.Known(kind) {
			continue
		}
		if _, err := pl.b.Decode(kind, pl.cfg.Defaults.Options[kind]); err != nil {
			pl.optionError(pl.cfg.atOf(pl.cfg.keys)("defaults.options."+kind), []string{"defaults"}, err.Error())
		}
	}
}
