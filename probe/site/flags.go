package site

import (
	"errors"
	"strings"
	"time"

	"github.com/flowprobe/flowprobe/probe"
)

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
