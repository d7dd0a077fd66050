package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/flowprobe/flowprobe/checks"
	"github.com/flowprobe/flowprobe/checks/trace"
	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/probe/catalog"
	"github.com/flowprobe/flowprobe/probe/report"
)

// traceArgs are the arguments and flags of `flowprobe trace`.
type traceArgs struct {
	what, address string
	source        string
	timeout       time.Duration
	maxHops       int
	tries         int
	output        string
	mtu           bool
	ipv4, ipv6    bool
}

// addTrace registers `flowprobe trace`: where on the path a flow is
// blocked, found with the flow's own packets.
func addTrace(c *cli) {
	a := &traceArgs{}
	cmd := c.app.Command("trace", "Find where on the path a flow is blocked, with its own packets and an increasing TTL. Exit code 0 when the destination answered, 1 when the flow is blocked, 2 on a usage or local error.")
	cmd.Arg("flow-or-kind", "A catalog flow id (or PRODUCT/FLOW), or a check kind: "+strings.Join(checks.Names(), ", ")+".").Required().StringVar(&a.what)
	cmd.Arg("address", "host[:port] ([v6]:port); the port defaults to the flow's first port.").Required().StringVar(&a.address)
	cmd.Flag("source-address", "Local address to send from.").PlaceHolder("ADDRESS").StringVar(&a.source)
	cmd.Flag("timeout", "How long each probe waits for its answer.").Default("1s").DurationVar(&a.timeout)
	cmd.Flag("max-hops", "Largest TTL (hop limit) to probe, 1 to 64.").Default(strconv.Itoa(trace.DefaultMaxHops)).IntVar(&a.maxHops)
	cmd.Flag("tries", "Probes per silent hop, 1 or 2.").Default("2").IntVar(&a.tries)
	cmd.Flag("mtu", "Also search the path MTU with Don't Fragment set (needs a raw socket).").BoolVar(&a.mtu)
	cmd.Flag("output", "Output format: text or json.").Default("text").EnumVar(&a.output, "text", "json")
	cmd.Flag("ipv4", "Use IPv4 only.").Short('4').BoolVar(&a.ipv4)
	cmd.Flag("ipv6", "Use IPv6 only.").Short('6').BoolVar(&a.ipv6)
	c.register(cmd, func(ctx context.Context) int { return runTrace(ctx, c, a) })
}

func runTrace(ctx context.Context, c *cli, a *traceArgs) int {
	req, err := a.request(ctx)
	if err != nil {
		fmt.Fprintf(c.stderr, "flowprobe trace: %v\n", err)
		return exitUsage
	}
	rep, err := (&trace.Tracer{}).Run(ctx, req)
	if err != nil {
		fmt.Fprintf(c.stderr, "flowprobe trace: %v\n", err)
		return exitUsage
	}
	view := traceView(rep, req)
	if a.output == "json" {
		err = report.WriteTraceJSON(c.stdout, view)
	} else {
		err = report.WriteTraceText(c.stdout, view)
	}
	if err != nil {
		fmt.Fprintf(c.stderr, "flowprobe trace: %v\n", err)
		return exitUsage
	}
	if !rep.Reached {
		return exitFailed
	}
	return exitOK
}

// request builds the trace request from the command line.
func (a *traceArgs) request(ctx context.Context) (trace.Request, error) {
	req := trace.Request{MaxHops: a.maxHops, HopTimeout: a.timeout, Tries: a.tries, Compare: true, MTU: a.mtu}
	if a.timeout <= 0 {
		return req, fmt.Errorf("--timeout %v: must be positive", a.timeout)
	}
	proto, port, payload, err := flowPacket(a.what)
	if err != nil {
		return req, err
	}
	host := a.address
	if h, p, err := net.SplitHostPort(a.address); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return req, fmt.Errorf("address %q: want a port in 1..65535", a.address)
		}
		host, port = h, n
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if proto != probe.ICMP && port == 0 {
		return req, fmt.Errorf("address %q: %s needs a port (host:port)", a.address, a.what)
	}
	family := ""
	switch {
	case a.ipv4 && a.ipv6:
		return req, errors.New("-4 and -6 exclude each other")
	case a.ipv4:
		family = "ip4"
	case a.ipv6:
		family = "ip6"
	}
	if a.source != "" {
		src, err := netip.ParseAddr(a.source)
		if err != nil {
			return req, fmt.Errorf("--source-address %q is not an IP address", a.source)
		}
		req.Source = src.Unmap()
		if family == "" {
			family = "ip6"
			if req.Source.Is4() {
				family = "ip4"
			}
		}
	}
	dst, err := trace.Resolve(ctx, host, family)
	if err != nil {
		return req, err
	}
	req.Protocol, req.Destination, req.Payload = proto, dst, payload
	if proto != probe.ICMP {
		req.Port = port
	}
	return req, nil
}

// flowPacket says which packet a flow or check kind sends: its transport,
// its first port (0 when the kind has none) and, for UDP, its datagram.
func flowPacket(what string) (probe.Protocol, int, []byte, error) {
	if kind, ok := checks.Lookup(what); ok {
		return kind.Transport, 0, udpPayload(what), nil
	}
	cat, err := catalog.Load()
	if err != nil {
		return "", 0, nil, err
	}
	product, id, scoped := strings.Cut(what, "/")
	if !scoped {
		id = product
	}
	var found []probe.Flow
	for _, f := range cat.Flows() {
		if f.ID == id && (!scoped || f.Product == product) {
			found = append(found, f)
		}
	}
	switch {
	case len(found) == 0:
		return "", 0, nil, fmt.Errorf("%q is neither a check kind (%s) nor a flow of the catalog (see flowprobe catalog list)", what, strings.Join(checks.Names(), ", "))
	case len(found) > 1:
		return "", 0, nil, fmt.Errorf("flow %q is in more than one product: name it as PRODUCT/%s", id, id)
	}
	f := found[0]
	port := 0
	for _, p := range f.Ports {
		if p.Checkable() {
			port = p.Low
			break
		}
	}
	return f.Protocol, port, udpPayload(f.App), nil
}

// udpPayload is the datagram a UDP flow of this kind (or application)
// sends, so that a filter that looks into it sees the real thing.
func udpPayload(kind string) []byte {
	if kind == "ntp" {
		b := make([]byte, 48)
		b[0] = 0x23 // LI 0, version 4, mode 3 (client)
		return b
	}
	return nil
}

// traceView turns the engine's report into the writers' form.
func traceView(rep *trace.Report, req trace.Request) report.Trace {
	v := report.Trace{
		Probe:           rep.Flow.Probe,
		Destination:     rep.Destination.String(),
		Reached:         rep.Reached,
		BlockedHop:      rep.BlockedHop,
		Verdict:         rep.Verdict,
		Notes:           rep.Notes,
		BoundSeconds:    req.Bound().Seconds(),
		DurationSeconds: rep.Duration.Seconds(),
	}
	if rep.Source.IsValid() {
		v.Source = rep.Source.String()
	}
	if rep.LastHop.Answered() {
		v.LastHop = rep.LastHop.Addr.String()
	}
	if rep.MTU != nil {
		v.MTU = rep.MTU.Summary
	}
	paths := []trace.Path{rep.Flow}
	if rep.Echo != nil {
		paths = append(paths, *rep.Echo)
	}
	for _, p := range paths {
		tp := report.TracePath{Probe: p.Probe, Method: p.Method}
		for _, h := range p.Hops {
			th := report.TraceHop{TTL: h.TTL, Reply: h.Reply, Code: h.Code, RTTSeconds: h.RTT.Seconds()}
			if h.Addr.IsValid() {
				th.Address = h.Addr.String()
			}
			tp.Hops = append(tp.Hops, th)
		}
		v.Paths = append(v.Paths, tp)
	}
	return v
}

// traceFailures traces the path of every failed allow flow among targets
// (results in the same order), one after another, and returns the traces
// by target ID.
func traceFailures(ctx context.Context, targets []probe.Target, results []probe.Result, hopTimeout time.Duration) map[string]report.Trace {
	traces := map[string]report.Trace{}
	tr := &trace.Tracer{}
	for i, t := range targets {
		r := results[i]
		if r.Success || t.Expect == probe.ExpectDeny || !traceable(r) {
			continue
		}
		traces[t.ID] = traceTarget(ctx, tr, t, r, hopTimeout)
	}
	return traces
}

// traceable reports whether a failed result says anything a trace can
// explain: not a name that did not resolve, nor a local problem.
func traceable(r probe.Result) bool {
	return r.Outcome != probe.OutcomeDNSError && r.Outcome != probe.OutcomeLocalError
}

// traceTarget traces the path of target t, whose check ended in r, with
// the flow's own packet and an ICMP echo comparison. A trace that cannot
// run is returned as a report.TraceError.
func traceTarget(ctx context.Context, tr *trace.Tracer, t probe.Target, r probe.Result, hopTimeout time.Duration) report.Trace {
	req := trace.Request{Protocol: t.Protocol, Port: t.Port, HopTimeout: hopTimeout, Compare: true, Payload: udpPayload(t.Check)}
	if r.Outcome == probe.OutcomeServiceTimeout || r.Outcome == probe.OutcomeProtocolError {
		req.AfterConnect = r.Outcome.String()
	}
	if t.SourceAddress != "" {
		req.Source, _ = netip.ParseAddr(t.SourceAddress)
	}
	dst, err := trace.Resolve(ctx, t.Host, t.IPFamily)
	if err == nil {
		req.Destination = dst
		var rep *trace.Report
		if rep, err = tr.Run(ctx, req); err == nil {
			return traceView(rep, req)
		}
	}
	return report.TraceError(probeNameOf(t), t.Host, err)
}

func probeNameOf(t probe.Target) string {
	if t.Protocol == probe.ICMP {
		return "icmp echo"
	}
	return fmt.Sprintf("%s/%d", t.Protocol, t.Port)
}
