package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/promslog"

	"github.com/flowprobe/flowprobe/checks"
	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/probe/catalog"
)

type listenFlags struct {
	config   string
	product  string
	role     string
	flows    []string
	ports    []string // FLOW=PORT overrides
	address  string
	duration time.Duration
	name     string
	log      *promslog.Config
	// maxSources, when > 0, replaces maxListenSources (tests).
	maxSources int
}

// addListen registers `flowprobe listen`: a stand-in for a service that is
// not installed yet, answering flowprobe's probes on the role's ports.
func addListen(c *cli) {
	f := &listenFlags{log: &promslog.Config{}}
	cmd := c.app.Command("listen", "Answer flowprobe's probes on the inbound TCP and UDP ports the catalog lists for a role, so `flowprobe check --responder ROLE` on the other side can prove the path before the product is installed.")
	cmd.Flag("config.file", "Site config: open exactly the ports `flowprobe check` with this file probes on this machine (its addresses, or --role).").PlaceHolder("FILE").StringVar(&f.config)
	configFileArg(cmd, &f.config)
	cmd.Flag("product", "Product whose catalog lists the ports (without a config).").StringVar(&f.product)
	cmd.Flag("role", "Role this machine will play: its inbound flows' ports are opened.").StringVar(&f.role)
	cmd.Flag("flow", "Open only the ports of this flow (repeatable).").StringsVar(&f.flows)
	cmd.Flag("port", "FLOW=PORT: open PORT for this flow instead of the catalog's, as a site config's ports override does (repeatable).").PlaceHolder("FLOW=PORT").StringsVar(&f.ports)
	cmd.Flag("address", "Address to listen on (default: every address).").StringVar(&f.address)
	cmd.Flag("duration", "How long to answer before stopping by itself.").Default("10m").DurationVar(&f.duration)
	cmd.Flag("name", "Name the responder gives in its answers (default: the host name).").StringVar(&f.name)
	addLogFlags(cmd, f.log)
	c.register(cmd, func(ctx context.Context) int { return runListen(ctx, c, f) })
}

// listenPort is one port to open and the flows that use it.
type listenPort struct {
	proto probe.Protocol
	port  int
	flows []string
}

// portSet gathers the ports to open, each once with every flow that uses
// it, in the order they were first seen.
type portSet struct {
	ports []listenPort
	at    map[string]int // "proto/port" → index in ports
}

func (s *portSet) add(proto probe.Protocol, port int, flow string) {
	if s.at == nil {
		s.at = map[string]int{}
	}
	k := fmt.Sprintf("%s/%d", proto, port)
	i, ok := s.at[k]
	if !ok {
		i = len(s.ports)
		s.at[k] = i
		s.ports = append(s.ports, listenPort{proto: proto, port: port})
	}
	if !slices.Contains(s.ports[i].flows, flow) {
		s.ports[i].flows = append(s.ports[i].flows, flow)
	}
}

// sorted returns the ports by protocol, then number.
func (s *portSet) sorted() []listenPort {
	slices.SortFunc(s.ports, func(a, b listenPort) int {
		if a.proto != b.proto {
			return strings.Compare(string(a.proto), string(b.proto))
		}
		return a.port - b.port
	})
	return s.ports
}

// parsePortOverrides reads --port FLOW=PORT flags.
func parsePortOverrides(args []string) (map[string]int, error) {
	over := map[string]int{}
	for _, a := range args {
		id, num, ok := strings.Cut(a, "=")
		port, err := strconv.Atoi(num)
		if !ok || id == "" || err != nil || port < 1 || port > 65535 {
			return nil, fmt.Errorf("--port %q: want FLOW=PORT with a port from 1 to 65535", a)
		}
		over[id] = port
	}
	return over, nil
}

// inboundPorts lists the TCP and UDP ports of the flows towards role.
// Ranges open their first port, as `flowprobe check` checks it by default;
// dynamic and ephemeral ports cannot be opened and are reported. A flow in
// over opens that one port instead of the catalog's.
func inboundPorts(p *probe.Product, role string, only []string, over map[string]int) (ports []listenPort, notes []string, err error) {
	if _, ok := p.Role(role); !ok {
		var names []string
		for _, r := range p.Roles {
			names = append(names, r.Name)
		}
		return nil, nil, fmt.Errorf("product %s has no role %q (roles: %s)", p.Name, role, strings.Join(names, ", "))
	}
	for _, id := range only {
		if _, ok := p.Flow(id); !ok {
			return nil, nil, fmt.Errorf("product %s has no flow %q", p.Name, id)
		}
	}
	for id := range over {
		if fl, ok := p.Flow(id); !ok || fl.Destination != role {
			return nil, nil, fmt.Errorf("--port: product %s has no flow %q towards role %s", p.Name, id, role)
		}
	}
	var set portSet
	for _, fl := range p.Flows {
		if fl.Destination != role || (len(only) > 0 && !slices.Contains(only, fl.ID)) {
			continue
		}
		if fl.Protocol != probe.TCP && fl.Protocol != probe.UDP {
			notes = append(notes, fmt.Sprintf("flow %s: %s needs no listener (the kernel answers echo requests)", fl.ID, fl.Protocol))
			continue
		}
		specs := fl.Ports
		if port, ok := over[fl.ID]; ok {
			specs = []probe.PortSpec{{Kind: probe.PortFixed, Low: port, High: port}}
		}
		for _, ps := range specs {
			if !ps.Checkable() {
				notes = append(notes, fmt.Sprintf("flow %s: %s %s ports cannot be opened ahead of the product", fl.ID, fl.Protocol, ps))
				continue
			}
			if ps.IsRange() {
				notes = append(notes, fmt.Sprintf("flow %s: range %s, opening its first port %d", fl.ID, ps, ps.Low))
			}
			set.add(fl.Protocol, ps.Low, fl.ID)
		}
	}
	return set.sorted(), notes, nil
}

func runListen(ctx context.Context, c *cli, f *listenFlags) int {
	logger := promslog.New(&promslog.Config{Level: f.log.Level, Format: f.log.Format, Writer: c.stderr})
	if f.duration <= 0 {
		fmt.Fprintln(c.stderr, "flowprobe listen: --duration must be positive: a responder always stops by itself")
		return exitUsage
	}
	cat, err := catalog.Load()
	if err != nil {
		fmt.Fprintf(c.stderr, "flowprobe listen: %v\n", err)
		return exitUsage
	}
	ports, notes, err := listenPorts(cat, f)
	if err != nil {
		fmt.Fprintf(c.stderr, "flowprobe listen: %v\n", err)
		return exitUsage
	}
	for _, n := range notes {
		logger.Info(n)
	}
	if len(ports) == 0 {
		if f.config != "" {
			fmt.Fprintf(c.stderr, "flowprobe listen: %s checks no TCP or UDP port of this machine (give --role, or self_addresses in the file)\n", f.config)
		} else {
			fmt.Fprintf(c.stderr, "flowprobe listen: no TCP or UDP port to open for role %s of %s\n", f.role, f.product)
		}
		return exitUsage
	}
	cfg := checks.ResponderConfig{Address: f.address, Name: f.name}
	flowsOf := map[string][]string{}
	for _, p := range ports {
		k := fmt.Sprintf("%s/%d", p.proto, p.port)
		flowsOf[k] = p.flows
		if p.proto == probe.TCP {
			cfg.TCPPorts = append(cfg.TCPPorts, p.port)
		} else {
			cfg.UDPPorts = append(cfg.UDPPorts, p.port)
		}
	}
	stats := newListenStats()
	if f.maxSources > 0 {
		stats.maxSources = f.maxSources
	}
	cfg.OnProbe = func(p checks.ResponderProbe) {
		k := fmt.Sprintf("%s/%d", p.Protocol, p.Port)
		if stats.add(k, p) {
			logger.Info("probe received", "protocol", p.Protocol, "port", p.Port,
				"remote", p.Remote.Addr().String(), "flowprobe", p.Hello, "flows", strings.Join(flowsOf[k], ","))
		}
	}
	logUnlogged := func() {
		if n, sources := stats.takeUnlogged(); n > 0 {
			logger.Info("more probes received, not logged one by one", "probes", n, "sources_remembered", sources)
		}
	}
	resp, err := checks.StartResponder(cfg)
	if err != nil {
		fmt.Fprintf(c.stderr, "flowprobe listen: %v\n", err)
		return exitUsage
	}
	for _, s := range resp.Skipped() {
		logger.Warn("port skipped", "protocol", s.Protocol, "port", s.Port, "err", s.Err)
	}
	for _, l := range resp.Listening() {
		k := fmt.Sprintf("%s/%d", l.Protocol, l.Port)
		logger.Info("listening", "protocol", l.Protocol, "port", l.Port, "address", l.Addr.String(), "flows", strings.Join(flowsOf[k], ","))
	}
	logger.Info("answering flowprobe probes", "product", f.product, "role", f.role, "responder", resp.Name(), "duration", f.duration)

	ctx, cancel := context.WithTimeout(ctx, f.duration)
	defer cancel()
	tick := time.NewTicker(listenLogEvery)
	defer tick.Stop()
	for ctx.Err() == nil {
		select {
		case <-tick.C:
			logUnlogged()
		case <-ctx.Done():
		}
	}
	if err := resp.Close(); err != nil {
		logger.Warn("closing the responder", "err", err)
	}
	logUnlogged()
	printListenSummary(c, resp, stats, flowsOf)
	return exitOK
}

// listenPorts chooses the ports to open: from the site config when one is
// given, else from the catalog's flows towards --role of --product.
func listenPorts(cat *catalog.Catalog, f *listenFlags) ([]listenPort, []string, error) {
	if f.config != "" {
		if f.product != "" || len(f.flows) > 0 || len(f.ports) > 0 {
			return nil, nil, fmt.Errorf("--product, --flow and --port go without a config; the config names its products, flows and ports")
		}
		return configPorts(cat, f.config, f.role)
	}
	if f.product == "" || f.role == "" {
		return nil, nil, fmt.Errorf("give --config.file FILE, or --product and --role")
	}
	prod, ok := cat.Product(f.product)
	if !ok {
		return nil, nil, fmt.Errorf("unknown product %q (products: %s)", f.product, strings.Join(cat.Names(), ", "))
	}
	over, err := parsePortOverrides(f.ports)
	if err != nil {
		return nil, nil, err
	}
	return inboundPorts(prod, f.role, f.flows, over)
}

func printListenSummary(c *cli, resp *checks.Responder, stats *listenStats, flowsOf map[string][]string) {
	fmt.Fprintf(c.stdout, "Responder %s: what it saw\n", resp.Name())
	total := 0
	for _, l := range resp.Listening() {
		k := fmt.Sprintf("%s/%d", l.Protocol, l.Port)
		seen, n := stats.seen(k)
		total += n
		fmt.Fprintf(c.stdout, "  %-10s %-40s %s\n", k, strings.Join(flowsOf[k], ","), seen)
	}
	for _, s := range resp.Skipped() {
		k := fmt.Sprintf("%s/%d", s.Protocol, s.Port)
		fmt.Fprintf(c.stdout, "  %-10s %-40s not opened: %v\n", k, strings.Join(flowsOf[k], ","), s.Err)
	}
	fmt.Fprintf(c.stdout, "%d probes received on %d ports, %d ports skipped\n", total, len(resp.Listening()), len(resp.Skipped()))
}
