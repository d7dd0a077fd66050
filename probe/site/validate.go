package site

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/flowprobe/flowprobe/probe"
)

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

	if !c.keys.has("max_targets") && c.MaxTargets == 0 {
		c.MaxTargets = DefaultMaxTargets
	}
	if c.MaxTargets < 1 {
		fail("max_targets", nil, "max_targets must be at least 1, not %d", c.MaxTargets)
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
