package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/flowprobe/flowprobe/checks"
	"github.com/flowprobe/flowprobe/probe/catalog"
	"github.com/flowprobe/flowprobe/probe/report"
	"github.com/flowprobe/flowprobe/probe/site"
	"github.com/flowprobe/flowprobe/scheduler"
)

// checkFlags are the flags of `flowprobe check`.
type checkFlags struct {
	configFile   string
	flags        site.Flags
	ipv4, ipv6   bool
	set          []string
	ranges       string
	output       string
	outputFile   string
	failOptional bool
	progress     string
	maxInFlight  int
	perHost      int
	trace        bool
	shard        scheduler.Shard
	timeoutSet   bool
}

// addCheck registers `flowprobe check`: the daemon's plan and checks, run
// once, now.
func addCheck(c *cli) {
	f := &checkFlags{}
	cmd := c.app.Command("check", "Run every planned check once, now, and report which flows pass (the pre-install check). Exit code 0 when every required flow passes, 1 when some failed, 2 on a usage or config error or when this machine could not run a check (local_error), 130 when interrupted.")
	cmd.Flag("config.file", "Site config to plan from. Without it, the flags below describe the site.").StringVar(&f.configFile)
	configFileArg(cmd, &f.configFile)
	cmd.Flag("product", "Product whose flows to check (without --config.file).").StringVar(&f.flags.Product)
	cmd.Flag("self", "Role this machine plays (repeatable): its outbound flows are checked.").StringsVar(&f.flags.Self)
	cmd.Flag("host", "ROLE=ADDRESS[,ADDRESS...]: the hosts of a destination role (repeatable).").StringsVar(&f.flags.Hosts)
	cmd.Flag("flow", "Check only this flow (repeatable; with or without --config.file).").StringsVar(&f.flags.Flows)
	cmd.Flag("exclude", "Do not check this flow (repeatable).").StringsVar(&f.flags.Exclude)
	cmd.Flag("responder", "ROLE whose hosts run `flowprobe listen` (repeatable).").StringsVar(&f.flags.Responders)
	cmd.Flag("check", "Check kind for the selected flows, instead of the catalog's choice.").StringVar(&f.flags.Check)
	cmd.Flag("set", "OPTION=VALUE for the selected flows' check (repeatable).").StringsVar(&f.set)
	cmd.Flag("expect", "allow (default) or deny: the selected flows must be blocked.").EnumVar((*string)(&f.flags.Expect), "allow", "deny")
	cmd.Flag("timeout", "Timeout of every check (default 5s).").IsSetByUser(&f.timeoutSet).DurationVar(&f.flags.Timeout)
	cmd.Flag("ranges", "How port ranges are checked: first, all or skip.").EnumVar(&f.ranges, "first", "all", "skip")
	cmd.Flag("source-address", "Local address the checks leave from.").StringVar(&f.flags.SourceAddress)
	cmd.Flag("self-address", "This machine's own address (repeatable): never probed, source of the firewall request.").StringsVar(&f.flags.SelfAddresses)
	cmd.Flag("ipv4", "Use IPv4 only.").Short('4').BoolVar(&f.ipv4)
	cmd.Flag("ipv6", "Use IPv6 only.").Short('6').BoolVar(&f.ipv6)
	addShardFlag(cmd, &f.shard)
	cmd.Flag("max-in-flight", "Checks running at once (default: the config's, else 256).").IntVar(&f.maxInFlight)
	cmd.Flag("max-in-flight-per-host", "Checks running at once against one host (default: the config's, else 4).").IntVar(&f.perHost)
	outputFlag(cmd, &f.output, "text", "json", "junit", "markdown")
	cmd.Flag("output.file", "Write the report to this file instead of standard output; an interrupted run writes none and leaves an existing file as it was.").StringVar(&f.outputFile)
	cmd.Flag("fail-optional", "Let a failing optional flow fail the run too.").BoolVar(&f.failOptional)
	cmd.Flag("progress", "Live progress on standard error: auto (when it is a terminal), always or never.").Default("auto").EnumVar(&f.progress, "auto", "always", "never")
	cmd.Flag("trace", "Trace the path of every failed flow and show where it stops (in every output format).").BoolVar(&f.trace)
	c.register(cmd, func(ctx context.Context) int { return runCheck(ctx, c, f) })
}

func runCheck(ctx context.Context, c *cli, f *checkFlags) int {
	cat, err := catalog.Load()
	if err != nil {
		fmt.Fprintf(c.stderr, "flowprobe check: %v\n", err)
		return exitUsage
	}
	cfg, plan, err := f.plan(cat)
	if err != nil {
		fmt.Fprintf(c.stderr, "flowprobe check: %v\n", err)
		return exitUsage
	}
	plan.Targets = f.shard.Filter(plan.Targets)
	for _, err := range icmpProblems(plan.Targets) {
		fmt.Fprintf(c.stderr, "flowprobe check: warning: %v\n", err)
	}
	out := c.stdout
	var file *reportFile
	if f.outputFile != "" {
		if file, err = openReportFile(f.outputFile); err != nil {
			fmt.Fprintf(c.stderr, "flowprobe check: %v\n", err)
			return exitUsage
		}
		defer file.abandon()
		out = file
	}

	sc := schedulerConfig(cfg.Scheduler)
	if f.maxInFlight > 0 {
		sc.MaxInFlight = f.maxInFlight
	}
	if f.perHost > 0 {
		sc.MaxInFlightPerHost = f.perHost
	}
	watch := newProgress(c.stderr, plan.Targets, f.showProgress(c.stderr))
	sched := scheduler.New(sc, watch.wrap(checks.Dispatcher), scheduler.Options{})
	defer sched.Close()
	watch.start()
	results := sched.RunOnce(ctx, plan.Targets, watch.done)
	watch.stop()

	if n := countInterrupted(results); n > 0 {
		return reportInterrupted(c, cat, plan, results, f.failOptional, n)
	}
	rep := report.NewCheck(cat, plan, results, f.failOptional)
	rep.Header = runHeader(cfg)
	if f.trace {
		rep.SetTraces(traceFailures(ctx, plan.Targets, results, time.Second))
	}
	if err := rep.Write(out, f.output); err != nil {
		fmt.Fprintf(c.stderr, "flowprobe check: write report: %v\n", err)
		return exitUsage
	}
	if file != nil {
		if err := file.commit(); err != nil {
			fmt.Fprintf(c.stderr, "flowprobe check: write report: %v\n", err)
			return exitUsage
		}
	}
	if f.outputFile != "" || f.output != "text" {
		// The summary line also goes to the terminal when the report
		// itself went elsewhere or is machine-readable.
		fmt.Fprintln(c.stderr, rep.Summary())
	}
	if msg := localErrors(plan.Targets, results); msg != "" {
		fmt.Fprint(c.stderr, msg)
		return exitLocal
	}
	if rep.Failed() {
		return exitFailed
	}
	return exitOK
}

// plan builds the site config from the file or the flags and plans it.
func (f *checkFlags) plan(cat *catalog.Catalog) (*site.Config, *site.PlanResult, error) {
	if f.timeoutSet && f.flags.Timeout <= 0 {
		return nil, nil, fmt.Errorf("--timeout %v: must be positive", f.flags.Timeout)
	}
	if f.configFile != "" {
		if f.flags.Product != "" || len(f.flags.Hosts) > 0 || len(f.flags.Self) > 0 || len(f.flags.Responders) > 0 ||
			f.flags.Check != "" || len(f.set) > 0 || f.flags.Expect != "" {
			return nil, nil, fmt.Errorf("--config.file and --product/--self/--host/--responder/--check/--set/--expect exclude each other: the config says all that")
		}
		cfg, plan, err := planFile(cat, f.configFile)
		if err != nil {
			return nil, nil, err
		}
		plan, err = selectFlows(plan, f.flags.Flows, f.flags.Exclude)
		return cfg, plan, err
	}
	if f.flags.Product == "" {
		return nil, nil, fmt.Errorf("give --config.file, or --product with --self and --host ROLE=ADDRESS (see flowprobe catalog list)")
	}
	switch {
	case f.ipv4 && f.ipv6:
		return nil, nil, fmt.Errorf("-4 and -6 exclude each other")
	case f.ipv4:
		f.flags.IPFamily = "ip4"
	case f.ipv6:
		f.flags.IPFamily = "ip6"
	}
	f.flags.Ranges = site.RangeMode(f.ranges)
	if len(f.set) > 0 {
		raw, err := checks.ParseSet(f.set)
		if err != nil {
			return nil, nil, err
		}
		f.flags.Options = raw
	}
	cfg, err := site.ConfigFromFlags(f.flags)
	if err != nil {
		return nil, nil, err
	}
	plan, err := site.Plan(cat, cfg, checks.Binder{})
	if err != nil {
		return nil, nil, err
	}
	return cfg, plan, nil
}

// selectFlows keeps the targets and skips of the flows named by only (all
// when empty) and not by exclude. A name that matches no flow of the plan
// is an error: a typo must not turn into "0 failed".
func selectFlows(plan *site.PlanResult, only, exclude []string) (*site.PlanResult, error) {
	if len(only) == 0 && len(exclude) == 0 {
		return plan, nil
	}
	known := map[string]bool{}
	for _, t := range plan.Targets {
		known[t.Flow] = true
	}
	for _, s := range plan.Skipped {
		known[s.Flow] = true
	}
	for _, id := range slices.Concat(only, exclude) {
		if !known[id] {
			return nil, fmt.Errorf("flow %q is not in the plan of this config (see flowprobe plan)", id)
		}
	}
	keep := func(flow string) bool {
		return (len(only) == 0 || slices.Contains(only, flow)) && !slices.Contains(exclude, flow)
	}
	sel := *plan // keeps the firewall request
	sel.Targets, sel.Skipped = nil, nil
	for _, t := range plan.Targets {
		if keep(t.Flow) {
			sel.Targets = append(sel.Targets, t)
		}
	}
	for _, s := range plan.Skipped {
		if keep(s.Flow) {
			sel.Skipped = append(sel.Skipped, s)
		}
	}
	return &sel, nil
}
