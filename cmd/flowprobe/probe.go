package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flowprobe/flowprobe/checks"
	"github.com/flowprobe/flowprobe/probe"
)

// probeArgs are the arguments and flags of `flowprobe probe`.
type probeArgs struct {
	kind, address string
	timeout       time.Duration
	set           []string
	output        string
	expect        string
	source        string
	ipv4, ipv6    bool
}

// addProbe registers `flowprobe probe`: one check of one kind against one
// address, once.
func addProbe(c *cli) {
	a := &probeArgs{}
	cmd := c.app.Command("probe", "Run one check once against one address and print the result. Exit code 0 when it passes, 1 when it fails, 2 on a usage error.")
	cmd.Arg("kind", "Check kind: "+strings.Join(checks.Names(), ", ")+".").Required().StringVar(&a.kind)
	cmd.Arg("address", "host:port ([v6]:port), or the host alone for icmp.").Required().StringVar(&a.address)
	cmd.Flag("timeout", "How long the check may take.").Default("5s").DurationVar(&a.timeout)
	cmd.Flag("set", "A check option as OPTION=VALUE (repeatable); VALUE is read as YAML.").PlaceHolder("OPTION=VALUE").StringsVar(&a.set)
	cmd.Flag("output", "Output format: text or json.").Default("text").EnumVar(&a.output, "text", "json")
	cmd.Flag("expect", "What the flow should do: allow (answer) or deny (blocked).").Default("allow").EnumVar(&a.expect, "allow", "deny")
	cmd.Flag("source-address", "Local address to send from.").PlaceHolder("ADDRESS").StringVar(&a.source)
	cmd.Flag("ipv4", "Use IPv4 only.").Short('4').BoolVar(&a.ipv4)
	cmd.Flag("ipv6", "Use IPv6 only.").Short('6').BoolVar(&a.ipv6)
	c.register(cmd, func(ctx context.Context) int { return runProbe(ctx, c, a) })
}

func runProbe(ctx context.Context, c *cli, a *probeArgs) int {
	t, err := probeTarget(a)
	if err != nil {
		fmt.Fprintf(c.stderr, "flowprobe probe: %v\n", err)
		return exitUsage
	}
	r := checks.Check(ctx, t)
	if a.output == "json" {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(probe.NewReport(t, r)); err != nil {
			fmt.Fprintf(c.stderr, "flowprobe probe: %v\n", err)
			return exitFailed
		}
	} else {
		writeProbeText(c.stdout, t, r)
	}
	if !r.Success {
		return exitFailed
	}
	return exitOK
}

// probeTarget builds the target from the command line, or says what is
// wrong with it.
func probeTarget(a *probeArgs) (probe.Target, error) {
	kind, ok := checks.Lookup(a.kind)
	if !ok {
		return probe.Target{}, fmt.Errorf("unknown check kind %q (known: %s)", a.kind, strings.Join(checks.Names(), ", "))
	}
	t := probe.Target{
		Flow:          "probe",
		Protocol:      kind.Transport,
		Check:         a.kind,
		Expect:        probe.Expect(a.expect),
		Timeout:       a.timeout,
		SourceAddress: a.source,
	}
	if a.timeout <= 0 {
		return t, fmt.Errorf("--timeout %v: must be positive", a.timeout)
	}
	switch {
	case a.ipv4 && a.ipv6:
		return t, fmt.Errorf("-4 and -6 exclude each other")
	case a.ipv4:
		t.IPFamily = "ip4"
	case a.ipv6:
		t.IPFamily = "ip6"
	}
	if a.source != "" {
		src, err := netip.ParseAddr(a.source)
		if err != nil {
			return t, fmt.Errorf("--source-address %q is not an IP address", a.source)
		}
		if (t.IPFamily == "ip4" && !src.Unmap().Is4()) || (t.IPFamily == "ip6" && src.Unmap().Is4()) {
			return t, fmt.Errorf("--source-address %s is not of the family chosen with -4/-6", a.source)
		}
	}
	if kind.Transport == probe.ICMP {
		host := strings.TrimSuffix(strings.TrimPrefix(a.address, "["), "]")
		if host == "" || strings.ContainsAny(host, " /") || (strings.Contains(host, ":") && !isIPv6(host)) {
			return t, fmt.Errorf("address %q: want a host name or address (no port) for %s", a.address, a.kind)
		}
		t.Host = host
	} else {
		host, portText, err := net.SplitHostPort(a.address)
		if err != nil {
			return t, fmt.Errorf("address %q: want host:port ([v6]:port for IPv6)", a.address)
		}
		port, err := strconv.Atoi(portText)
		if err != nil || port < 1 || port > 65535 || host == "" {
			return t, fmt.Errorf("address %q: want host:port with a port in 1..65535", a.address)
		}
		t.Host, t.Port = host, port
	}
	raw, err := checks.ParseSet(a.set)
	if err != nil {
		return t, err
	}
	opts, err := checks.Decode(a.kind, raw)
	if err != nil {
		return t, err
	}
	t.Options = opts
	t.ID = probe.MakeID("", t.Flow, t.Host, t.Port, t.Protocol, t.Check)
	return t, nil
}

func isIPv6(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is6()
}

// writeProbeText prints a result for a person: verdict, outcome, timing,
// details, the error and what the outcome usually means.
func writeProbeText(w io.Writer, t probe.Target, r probe.Result) {
	mark := "✓"
	if !r.Success {
		mark = "✗"
	}
	fmt.Fprintf(w, "%s %s %s: %s in %s", mark, t.Check, t.Address(), r.Outcome, fmtDuration(r.Duration))
	if t.Expect == probe.ExpectDeny {
		if r.Success {
			fmt.Fprint(w, " (blocked, as expected)")
		} else {
			fmt.Fprint(w, " (expected to be blocked)")
		}
	}
	fmt.Fprintln(w)
	var phases []string
	for p, d := range r.Phases {
		if d > 0 {
			phases = append(phases, probe.Phase(p).String()+" "+fmtDuration(d))
		}
	}
	if len(phases) > 0 {
		fmt.Fprintf(w, "  phases:  %s\n", strings.Join(phases, ", "))
	}
	for _, k := range slices.Sorted(maps.Keys(r.Details)) {
		fmt.Fprintf(w, "  %s: %s\n", k, r.Details[k])
	}
	for _, k := range slices.Sorted(maps.Keys(r.Values)) {
		v := r.Values[k]
		if strings.HasSuffix(k, "_timestamp_seconds") {
			fmt.Fprintf(w, "  %s: %s\n", k, time.Unix(int64(v), 0).UTC().Format(time.RFC3339))
			continue
		}
		fmt.Fprintf(w, "  %s: %g\n", k, v)
	}
	if r.Err != nil {
		fmt.Fprintf(w, "  error:   %v\n", r.Err)
	}
	fmt.Fprintf(w, "  hint:    %s: %s\n", r.Outcome, r.Outcome.Meaning())
}

// fmtDuration rounds for reading: 1.234ms, 12.3ms, 1.5s.
func fmtDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}
