// Package site reads a site configuration (which products run here, as
// which role, the hosts of the other roles, how often to check), validates
// it, and plans it against the catalog: flows × hosts → probe.Target, with
// the skipped flows and the firewall request beside them. Its errors name
// the config file, the line and the product, role or flow.
package site

import (
	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/probe/internal/yamlnode"

	"fmt"
	"slices"
	"time"
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
	// DefaultMaxTargets is the ceiling on the targets one config plans.
	DefaultMaxTargets = 100000
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
	// LocalAddresses are addresses of this machine found by the caller
	// (the CLI reads them from the network interfaces when SelfAddresses
	// is not set): hosts among them are not probed either, but they never
	// appear in the firewall request. Not read from the file.
	LocalAddresses []string
	// SourceAddress is the local address checks bind to ("" = any).
	SourceAddress string
	// IPFamily is "" (either, IPv4 first), "ip4" or "ip6".
	IPFamily string
	// MaxTargets is the most targets the config may plan (0 = the
	// default); Plan refuses a config that would plan more.
	MaxTargets int
	// Catalogs are the site's own catalog files (paths relative to the
	// config file), merged into the built-in catalog by product name.
	Catalogs  []string
	Defaults  Defaults
	Scheduler SchedulerConfig
	Trace     TraceConfig
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

// TraceConfig holds the settings of the `trace:` block: the daemon's
// automatic path trace of a flow that turns failed.
type TraceConfig struct {
	// NoAuto turns the automatic trace off (`auto: false`).
	NoAuto bool
	// DenyFlows traces expect: deny flows too when they turn failed (they
	// connected: the trace shows the path that let them through).
	DenyFlows bool
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
	// Exclude lists flows this site does not use: neither checked nor in
	// the firewall request.
	Exclude []string
	// RequestOnly lists flows kept in the firewall request but not
	// checked (one-way flows such as SNMP traps or syslog).
	RequestOnly []string
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
	// PortRanges narrows a flow's documented port range ("10001-10010"
	// within "10001-65535") for every host of this role.
	PortRanges map[string]probe.PortSpec
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
	// PortRanges narrows documented ranges for this host, as in RoleConfig.
	PortRanges map[string]probe.PortSpec

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

// Error is one problem of a site config, placed at file:line and naming
// the product, role or flow it concerns (Ctx). The catalog's errors are of
// the same type.
type Error = yamlnode.Error

func configError(p pos, ctx []string, format string, args ...any) error {
	return &Error{File: p.file, Line: p.line, Ctx: slices.Clone(ctx), Msg: fmt.Sprintf(format, args...)}
}

// joinSorted joins errs in file and line order, so a user reads them from
// the top of the file down.
func joinSorted(errs []error) error { return yamlnode.Join(errs) }
