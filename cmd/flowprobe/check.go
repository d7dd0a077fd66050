package main

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/flowprobe/flowprobe/checks"
	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/scheduler"
)

// checkFlags are the flags of `flowprobe check`.
type checkFlags struct {
	configFile   string
	flags        probe.Flags
	ipv4, ipv6   bool
	set          []string
	ranges       string
	output       string
	outputFile   string
	failOptional bool
	progress     string
	maxInFlight  int
	perHost      int
}

// addCheck registers `flowprobe check`: the daemon's plan and checks, run
// once, now.
func addCheck(c *cli) {
	f := &checkFlags{}
	cmd := c.app.Command("check", "Run every planned check once, now, and report which flows pass (the pre-install check).")
	cmd.Flag("config.file", "Site config to plan from. Without it, the flags below describe the site.").StringVar(&f.configFile)
	cmd.Flag("product", "Product whose flows to check (without --config.file).").StringVar(&f.flags.Product)
	cmd.Flag("self", "Role this machine plays (repeatable): its outbound flows are checked.").StringsVar(&f.flags.Self)
	cmd.Flag("host", "ROLE=ADDRESS[,ADDRESS...]: the hosts of a destination role (repeatable).").StringsVar(&f.flags.Hosts)
	cmd.Flag("flow", "Check only this flow (repeatable; with or without --config.file).").StringsVar(&f.flags.Flows)
	cmd.Flag("exclude", "Do not check this flow (repeatable).").StringsVar(&f.flags.Exclude)
	cmd.Flag("responder", "ROLE whose hosts run `flowprobe listen` (repeatable).").StringsVar(&f.flags.Responders)
	cmd.Flag("check", "Check kind for the selected flows, instead of the catalog's choice.").StringVar(&f.flags.Check)
	cmd.Flag("set", "OPTION=VALUE for the selected flows' check (repeatable).").StringsVar(&f.set)
	cmd.Flag("expect", "allow (default) or deny: the selected flows must be blocked.").EnumVar((*string)(&f.flags.Expect), "allow", "deny")
	cmd.Flag("timeout", "Timeout of every check (default 5s).").DurationVar(&f.flags.Timeout)
	cmd.Flag("ranges", "How port ranges are checked: first, all or skip.").EnumVar(&f.ranges, "first", "all", "skip")
	cmd.Flag("source-address", "Local address the checks leave from.").StringVar(&f.flags.SourceAddress)
	cmd.Flag("self-address", "This machine's own address (repeatable): never probed, source of the firewall request.").StringsVar(&f.flags.SelfAddresses)
	cmd.Flag("ipv4", "Use IPv4 only.").Short('4').BoolVar(&f.ipv4)
	cmd.Flag("ipv6", "Use IPv6 only.").Short('6').BoolVar(&f.ipv6)
	cmd.Flag("max-in-flight", "Checks running at once (default: the config's, else 256).").IntVar(&f.maxInFlight)
	cmd.Flag("max-in-flight-per-host", "Checks running at once against one host (default: the config's, else 4).").IntVar(&f.perHost)
	cmd.Flag("output", "Report format: text, json, junit or markdown.").Short('o').Default("text").EnumVar(&f.output, "text", "json", "junit", "markdown")
	cmd.Flag("output.file", "Write the report to this file instead of standard output.").StringVar(&f.outputFile)
	cmd.Flag("fail-optional", "Let a failing optional flow fail the run too.").BoolVar(&f.failOptional)
	cmd.Flag("progress", "Live progress on standard error: auto (when it is a terminal), always or never.").Default("auto").EnumVar(&f.progress, "auto", "always", "never")
	c.register(cmd, func(ctx context.Context) int { return runCheck(ctx, c, f) })
}

func runCheck(ctx context.Context, c *cli, f *checkFlags) int {
	cat, err := probe.LoadCatalog()
	if err != nil {
		fmt.Fprintf(c.stderr, "flowprobe check: %v\n", err)
		return exitUsage
	}
	cfg, plan, err := f.plan(cat)
	if err != nil {
		fmt.Fprintf(c.stderr, "flowprobe check: %v\n", err)
		return exitUsage
	}
	for _, err := range icmpProblems(plan.Targets) {
		fmt.Fprintf(c.stderr, "flowprobe check: warning: %v\n", err)
	}
	out := c.stdout
	if f.outputFile != "" {
		file, err := os.Create(f.outputFile)
		if err != nil {
			fmt.Fprintf(c.stderr, "flowprobe check: %v\n", err)
			return exitUsage
		}
		defer file.Close()
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

	rep := newCheckReport(cat, plan, results, f.failOptional)
	switch f.output {
	case "json":
		err = rep.writeJSON(out)
	case "junit":
		err = rep.writeJUnit(out)
	case "markdown":
		err = rep.writeMarkdown(out)
	default:
		err = rep.writeText(out)
	}
	if err != nil {
		fmt.Fprintf(c.stderr, "flowprobe check: write report: %v\n", err)
		return exitUsage
	}
	if f.outputFile != "" || f.output != "text" {
		// The summary line also goes to the terminal when the report
		// itself went elsewhere or is machine-readable.
		fmt.Fprintln(c.stderr, rep.summary())
	}
	if rep.failed > 0 {
		return exitFailed
	}
	return exitOK
}

// plan builds the site config from the file or the flags and plans it.
func (f *checkFlags) plan(cat *probe.Catalog) (*probe.Config, *probe.PlanResult, error) {
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
	f.flags.Ranges = probe.RangeMode(f.ranges)
	if len(f.set) > 0 {
		raw, err := checks.ParseSet(f.set)
		if err != nil {
			return nil, nil, err
		}
		f.flags.Options = raw
	}
	cfg, err := probe.ConfigFromFlags(f.flags)
	if err != nil {
		return nil, nil, err
	}
	plan, err := probe.Plan(cat, cfg, checks.Binder{})
	if err != nil {
		return nil, nil, err
	}
	return cfg, plan, nil
}

// selectFlows keeps the targets and skips of the flows named by only (all
// when empty) and not by exclude. A name that matches no flow of the plan
// is an error: a typo must not turn into "0 failed".
func selectFlows(plan *probe.PlanResult, only, exclude []string) (*probe.PlanResult, error) {
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
	sel := &probe.PlanResult{Rules: plan.Rules}
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
	return sel, nil
}

func (f *checkFlags) showProgress(w io.Writer) bool {
	switch f.progress {
	case "always":
		return true
	case "never":
		return false
	}
	file, ok := w.(*os.File)
	return ok && term.IsTerminal(int(file.Fd()))
}

// progress shows, on a terminal, how many checks are done and which of
// the running ones have been running longest.
type progress struct {
	w       io.Writer
	enabled bool
	total   int
	targets []probe.Target

	mu      sync.Mutex
	n       int
	running map[string]time.Time // target ID → start
	stopped chan struct{}
	exited  chan struct{}
}

func newProgress(w io.Writer, targets []probe.Target, enabled bool) *progress {
	return &progress{w: w, enabled: enabled, total: len(targets), targets: targets,
		running: map[string]time.Time{}, stopped: make(chan struct{}), exited: make(chan struct{})}
}

// wrap records when each check starts, for the "still running" list.
func (p *progress) wrap(c probe.Checker) probe.Checker {
	if !p.enabled {
		return c
	}
	return probe.CheckerFunc(func(ctx context.Context, t probe.Target) probe.Result {
		p.mu.Lock()
		p.running[t.ID] = time.Now()
		p.mu.Unlock()
		r := c.Check(ctx, t)
		p.mu.Lock()
		delete(p.running, t.ID)
		p.mu.Unlock()
		return r
	})
}

// done is RunOnce's progress callback.
func (p *progress) done(int, probe.Result) {
	p.mu.Lock()
	p.n++
	p.mu.Unlock()
}

func (p *progress) start() {
	if !p.enabled {
		close(p.exited)
		return
	}
	go func() {
		defer close(p.exited)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-p.stopped:
				fmt.Fprint(p.w, "\r\033[K")
				return
			case <-tick.C:
				fmt.Fprint(p.w, "\r\033[K"+p.line())
			}
		}
	}()
}

func (p *progress) stop() {
	close(p.stopped)
	<-p.exited
}

// line is the progress line: done of total, and the three slowest checks
// still running.
func (p *progress) line() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	type run struct {
		id    string
		since time.Duration
	}
	var runs []run
	now := time.Now()
	for id, start := range p.running {
		runs = append(runs, run{id, now.Sub(start)})
	}
	slices.SortFunc(runs, func(a, b run) int { return int(b.since - a.since) })
	var b strings.Builder
	fmt.Fprintf(&b, "[%d/%d]", p.n, p.total)
	for i, r := range runs {
		if i == 3 {
			fmt.Fprintf(&b, " +%d", len(runs)-3)
			break
		}
		fmt.Fprintf(&b, " %s (%.1fs)", shortID(r.id), r.since.Seconds())
	}
	return b.String()
}

// shortID drops the product and check kind from a target ID.
func shortID(id string) string {
	parts := strings.Split(id, "/")
	if len(parts) >= 4 {
		return parts[1] + " " + parts[2]
	}
	return id
}

// checkReport is the outcome of one `flowprobe check` run.
type checkReport struct {
	targets      []probe.Target
	results      []probe.Result
	skipped      []probe.Skip
	titles       map[string]string
	failOptional bool

	passed, failed, optionalFailed int
}

func newCheckReport(cat *probe.Catalog, plan *probe.PlanResult, results []probe.Result, failOptional bool) *checkReport {
	r := &checkReport{targets: plan.Targets, results: results, skipped: plan.Skipped,
		titles: map[string]string{}, failOptional: failOptional}
	for _, p := range cat.Products {
		r.titles[p.Name] = p.Title
	}
	for i, t := range r.targets {
		switch {
		case results[i].Success:
			r.passed++
		case r.counts(t):
			r.failed++
		default:
			r.optionalFailed++
		}
	}
	return r
}

// counts reports whether a failure of t fails the run: required and
// conditional flows do (a conditional flow is planned because the site
// configured its condition's role), optional ones only when asked.
func (r *checkReport) counts(t probe.Target) bool {
	return t.Required != probe.Optional || r.failOptional
}

func (r *checkReport) summary() string {
	s := fmt.Sprintf("%d passed, %d failed, %d skipped", r.passed, r.failed+r.optionalFailed, len(r.skipped))
	if r.optionalFailed > 0 {
		s += fmt.Sprintf(" (%d of the failures are optional flows and do not fail the run)", r.optionalFailed)
	}
	return s
}

// group is the targets of one product and destination, in report order.
type group struct {
	product, destination string
	idx                  []int
}

func (r *checkReport) groups() []group {
	var gs []group
	at := map[string]int{}
	for i, t := range r.targets {
		k := t.Product + "\x00" + t.Destination
		g, ok := at[k]
		if !ok {
			g = len(gs)
			at[k] = g
			gs = append(gs, group{product: t.Product, destination: t.Destination})
		}
		gs[g].idx = append(gs[g].idx, i)
	}
	slices.SortStableFunc(gs, func(a, b group) int {
		return strings.Compare(a.product+"\x00"+a.destination, b.product+"\x00"+b.destination)
	})
	return gs
}

func portProto(t probe.Target) string {
	if t.Port == 0 {
		return string(t.Protocol)
	}
	return fmt.Sprintf("%s/%d", t.Protocol, t.Port)
}

func latency(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	default:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
}

// explain is the one-line meaning of a result, with the check's own reason
// when it gave one.
func explain(t probe.Target, res probe.Result) string {
	if res.Success && t.Expect == probe.ExpectDeny {
		return "blocked, as this flow must be (" + res.Outcome.String() + ")"
	}
	if !res.Success && t.Expect == probe.ExpectDeny {
		return "this flow must be blocked, but the packets reached the host"
	}
	if res.Outcome == probe.OutcomeOK {
		if res.Details[probe.DetailResponder] == "true" {
			return "a flowprobe responder answered"
		}
		return ""
	}
	if reason := res.Details[probe.DetailReason]; reason != "" {
		return reason + " — " + res.Outcome.Meaning()
	}
	return res.Outcome.Meaning()
}

func mark(res probe.Result) string {
	if res.Success {
		return "✓"
	}
	return "✗"
}

func (r *checkReport) writeText(w io.Writer) error {
	tw := &errWriter{w: w}
	for _, g := range r.groups() {
		title := r.titles[g.product]
		if title == "" {
			title = g.product
		}
		tw.printf("%s → %s\n", title, g.destination)
		width := 0
		for _, i := range g.idx {
			width = max(width, len(r.targets[i].Flow))
		}
		for _, i := range g.idx {
			t, res := r.targets[i], r.results[i]
			opt := ""
			if !res.Success && !r.counts(t) {
				opt = " (optional)"
			}
			tw.printf("  %s %-*s  %-28s %-9s %-6s %-14s %9s%s\n", mark(res), width, t.Flow,
				t.Address(), portProto(t), t.Check, res.Outcome, latency(res.Duration), opt)
			if e := explain(t, res); e != "" {
				tw.printf("      %s\n", e)
			}
			if !res.Success && res.Err != nil {
				tw.printf("      error: %s\n", res.Err)
			}
		}
		tw.printf("\n")
	}
	if len(r.skipped) > 0 {
		tw.printf("Not checked from here:\n")
		for _, s := range r.skipped {
			what := s.Flow
			if s.Host != "" {
				what += " " + s.Host
			}
			if s.Port != "" {
				what += " port " + s.Port
			}
			tw.printf("  - %s %s: %s\n", s.Product, what, s.Reason)
		}
		tw.printf("\n")
	}
	tw.printf("%s\n", r.summary())
	return tw.err
}

func (r *checkReport) writeJSON(w io.Writer) error {
	reps := make([]probe.Report, len(r.targets))
	for i, t := range r.targets {
		reps[i] = probe.NewReport(t, r.results[i])
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(reps)
}

func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "\r", "").Replace(s)
}

func (r *checkReport) writeMarkdown(w io.Writer) error {
	mw := &errWriter{w: w}
	for _, g := range r.groups() {
		title := r.titles[g.product]
		if title == "" {
			title = g.product
		}
		mw.printf("### %s → %s\n\n", mdEscape(title), mdEscape(g.destination))
		mw.printf("| | flow | source | target | protocol | check | outcome | latency | what it means |\n")
		mw.printf("|---|---|---|---|---|---|---|---|---|\n")
		for _, i := range g.idx {
			t, res := r.targets[i], r.results[i]
			why := explain(t, res)
			if !res.Success && res.Err != nil {
				why += " (`" + strings.ReplaceAll(mdEscape(res.Err.Error()), "`", "'") + "`)"
			}
			mw.printf("| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", mark(res), mdEscape(t.Flow),
				mdEscape(t.Source), mdEscape(t.Address()), portProto(t), t.Check, res.Outcome,
				latency(res.Duration), mdEscape(why))
		}
		mw.printf("\n")
	}
	if len(r.skipped) > 0 {
		mw.printf("**Not checked from here**\n\n")
		for _, s := range r.skipped {
			mw.printf("- %s `%s`: %s\n", mdEscape(s.Product), mdEscape(s.Flow), mdEscape(s.Reason))
		}
		mw.printf("\n")
	}
	mw.printf("**%s**\n", r.summary())
	return mw.err
}

// JUnit XML, as CI systems read it.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

func seconds(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) }

func (r *checkReport) writeJUnit(w io.Writer) error {
	all := junitSuites{Name: "flowprobe check"}
	var total time.Duration
	suites := map[string]*junitSuite{}
	suiteTime := map[string]time.Duration{}
	var order []string
	suite := func(product string) *junitSuite {
		s, ok := suites[product]
		if !ok {
			s = &junitSuite{Name: product}
			suites[product] = s
			order = append(order, product)
		}
		return s
	}
	for i, t := range r.targets {
		res := r.results[i]
		s := suite(t.Product)
		tc := junitCase{
			Name:      fmt.Sprintf("%s %s → %s %s (%s)", t.Flow, t.Source, t.Address(), portProto(t), t.Check),
			Classname: t.Product + "." + t.Destination,
			Time:      seconds(res.Duration),
		}
		msg := res.Outcome.String()
		if e := explain(t, res); e != "" {
			msg += ": " + e
		}
		switch {
		case res.Success:
			tc.SystemOut = msg
		case r.counts(t):
			tc.Failure = &junitMessage{Message: msg, Type: res.Outcome.String(), Text: res.Error()}
			s.Failures++
		default:
			tc.Skipped = &junitMessage{Message: "optional flow failed: " + msg, Text: res.Error()}
			s.Skipped++
		}
		s.Tests++
		total += res.Duration
		suiteTime[t.Product] += res.Duration
		s.Cases = append(s.Cases, tc)
	}
	for _, sk := range r.skipped {
		s := suite(sk.Product)
		s.Cases = append(s.Cases, junitCase{
			Name:      fmt.Sprintf("%s %s → %s", sk.Flow, sk.Source, sk.Destination),
			Classname: sk.Product + "." + sk.Destination,
			Time:      "0.000",
			Skipped:   &junitMessage{Message: sk.Reason},
		})
		s.Tests++
		s.Skipped++
	}
	for _, name := range order {
		s := suites[name]
		s.Time = seconds(suiteTime[name])
		all.Tests += s.Tests
		all.Failures += s.Failures
		all.Skipped += s.Skipped
		all.Suites = append(all.Suites, *s)
	}
	all.Time = seconds(total)
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(all); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// errWriter remembers the first write error so a report's many printf
// calls need one check.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}
