package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/flowprobe/flowprobe/checks"
	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/probe/report"
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
	cmd := c.app.Command("probe", "Run one check once against one address and print the result. Exit code 0 when it passes, 1 when it fails, 2 on a usage error or when this machine could not run the check (local_error), 130 when interrupted.")
	cmd.Arg("kind", "Check kind: "+strings.Join(checks.Names(), ", ")+".").Required().StringVar(&a.kind)
	cmd.Arg("address", "host:port ([v6]:port); the host alone for icmp, or for a kind with a well-known port (ntp 123, dns 53, ldap 389, ssh 22, snmp 161, iscsi 3260, http 80, tls 443).").Required().StringVar(&a.address)
	cmd.Flag("timeout", "How long the check may take.").Default("5s").DurationVar(&a.timeout)
	cmd.Flag("set", "A check option as OPTION=VALUE (repeatable); VALUE is read as YAML.").PlaceHolder("OPTION=VALUE").StringsVar(&a.set)
	outputFlag(cmd, &a.output, "text", "json")
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
	if r.Interrupted {
		// An interrupted run says nothing about the flow: no result.
		fmt.Fprintf(c.stderr, "flowprobe probe: interrupted: the check did not finish\n")
		return exitInterrupted
	}
	if a.output == "json" {
		err = report.WriteResultJSON(c.stdout, t, r)
	} else {
		err = report.WriteResultText(c.stdout, t, r)
	}
	if err != nil {
		fmt.Fprintf(c.stderr, "flowprobe probe: %v\n", err)
		return exitFailed
	}
	switch {
	case r.Outcome == probe.OutcomeLocalError:
		return exitLocal
	case !r.Success:
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
		if err != nil && kind.DefaultPort > 0 && a.address != "" && !strings.HasSuffix(a.address, ":") &&
			(!strings.Contains(a.address, ":") || isIPv6(strings.Trim(a.address, "[]"))) {
			// A host alone: the kind's well-known port.
			host, portText, err = strings.Trim(a.address, "[]"), strconv.Itoa(kind.DefaultPort), nil
		}
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
	var fp probe.Fingerprinter
	t.Fingerprint = fp.Of(&t, raw)
	return t, nil
}

func isIPv6(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is6()
}
