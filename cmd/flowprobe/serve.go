package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/flowprobe/flowprobe/checks"
	"github.com/flowprobe/flowprobe/exporter"
	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/probe/catalog"
	"github.com/flowprobe/flowprobe/probe/report"
	"github.com/flowprobe/flowprobe/probe/site"
	"github.com/flowprobe/flowprobe/scheduler"
)

// defaultListenAddress is flowprobe's port.
const defaultListenAddress = ":9871"

// serveOptions are the flags of `flowprobe serve`.
type serveOptions struct {
	configFile string
	demo       bool
	lifecycle  bool
	web        *web.FlagConfig
	log        promslog.Config
	shard      scheduler.Shard
	autoTrace  autoTraceFlags

	// listening, when set, is called with the bound addresses once HTTP
	// is served and before any target is scheduled (tests use it).
	listening func([]net.Addr)
	// started, when set, is called once the first configuration runs.
	started func()
	// recorded, when set, is called after each result is stored.
	recorded func(scheduler.Status)
	// hup delivers reload requests; nil means SIGHUP.
	hup <-chan os.Signal
	// trace, when set, stands in for the trace engine, and traced is
	// called after an automatic trace was handed to the store (tests).
	trace  traceFunc
	traced func(t probe.Target, stored bool)
}

func (o *serveOptions) tracer() traceFunc {
	if o.trace != nil {
		return o.trace
	}
	return liveTracer()
}

func (o *serveOptions) traceStore(s *exporter.Store) func(probe.Target, time.Time, report.Trace) bool {
	if o.traced == nil {
		return s.SetTrace
	}
	return func(t probe.Target, at time.Time, tr report.Trace) bool {
		ok := s.SetTrace(t, at, tr)
		o.traced(t, ok)
		return ok
	}
}

// addServe registers `flowprobe serve`.
func addServe(c *cli) {
	cmd := c.app.Command("serve", "Run the checks on a schedule; serve Prometheus metrics, a status page and a JSON API.")
	o := &serveOptions{}
	cmd.Flag("config.file", "Site configuration file. SIGHUP (or POST /-/reload with --web.enable-lifecycle) re-reads it.").PlaceHolder("site.yml").StringVar(&o.configFile)
	configFileArg(cmd, &o.configFile)
	cmd.Flag("demo", "Without a config file: start a demo SIOS LifeKeeper site on 127.0.0.2-4 (flowprobe's responders, a closed port, silent peers) and probe it.").BoolVar(&o.demo)
	cmd.Flag("web.enable-lifecycle", "Allow reloading the configuration with POST /-/reload (SIGHUP always reloads).").BoolVar(&o.lifecycle)
	addShardFlag(cmd, &o.shard)
	addAutoTraceFlags(cmd, &o.autoTrace)
	o.web = kingpinflag.AddFlags(cmd, defaultListenAddress)
	addLogFlags(cmd, &o.log)
	c.register(cmd, func(ctx context.Context) int { return serve(ctx, o, c.stderr) })
}

// planned is one loaded configuration, ready to apply.
type planned struct {
	targets []probe.Target
	skipped int
	sched   scheduler.Config
	site    string
	labels  map[string]string
	trace   site.TraceConfig
}

// daemon ties the scheduler, the exporter and the configuration together.
type daemon struct {
	log   *slog.Logger
	load  func() (*planned, error)
	sched *scheduler.Scheduler
	exp   *exporter.Exporter
	auto  *autoTracer // nil with --no-trace.auto

	mu sync.Mutex // one reload at a time
}

func serve(ctx context.Context, o *serveOptions, stderr io.Writer) int {
	o.log.Writer = stderr
	logger := promslog.New(&o.log)
	slog.SetDefault(logger) // where checks log what they cannot return, e.g. a panic's stack

	var load func() (*planned, error)
	var products []*probe.Product // for the status page's flow descriptions
	switch {
	case o.configFile != "" && o.demo:
		fmt.Fprintln(stderr, "flowprobe serve: --demo runs a built-in site; leave out --config.file")
		return exitUsage
	case o.configFile != "":
		cat, err := catalog.Load()
		if err != nil {
			logger.Error("Loading the catalog failed", "err", err)
			return exitUsage
		}
		load = func() (*planned, error) { return loadSite(cat, o.configFile) }
		for _, n := range cat.Names() {
			p, _ := cat.Product(n)
			products = append(products, p)
		}
	case o.demo:
		site, err := startDemo()
		if err != nil {
			logger.Error("Starting the demo failed", "err", err)
			return exitFailed
		}
		defer site.Close()
		products = site.products()
		load = func() (*planned, error) {
			cfg, res, err := site.plan()
			if err != nil {
				return nil, err
			}
			return fromPlan(cfg, res), nil
		}
	default:
		fmt.Fprintln(stderr, "flowprobe serve: no site configuration. Start with\n"+
			"  flowprobe serve --config.file=site.yml\n"+
			"or try it out on a built-in demo site with\n"+
			"  flowprobe serve --demo")
		return exitUsage
	}

	logger.Info("Starting flowprobe", "version", version.Info(), "build_context", version.BuildContext())
	d := &daemon{log: logger, load: sharded(load, o.shard)}
	d.exp = exporter.New(exporter.Options{Logger: logger, ValueHelp: checks.Values(), ShardIndex: o.shard.Index, ShardCount: o.shard.Count, Stats: func() exporter.SchedulerStats {
		st := d.sched.Stats()
		return exporter.SchedulerStats{Targets: st.Targets, InFlight: st.InFlight, LagCount: st.Lag.Count, LagSum: st.Lag.Sum, LagBuckets: st.Lag.Buckets}
	}})
	var sink scheduler.Sink = storeSink{d.exp.Store(), o.recorded, logger}
	if o.autoTrace.enabled {
		d.auto = newAutoTracer(sink, o.autoTrace, o.tracer(), o.traceStore(d.exp.Store()), time.Now, logger)
		defer d.auto.Close() // after the scheduler's Close: no Record comes later
		sink = d.auto
	}
	d.sched = scheduler.New(scheduler.Config{}, checks.Dispatcher, scheduler.Options{Sink: sink, Logger: logger})
	defer d.sched.Close()
	// A bad configuration stops the start before anything listens.
	first, err := d.prepare()
	if err != nil {
		logger.Error("Loading the configuration failed", "err", err)
		return exitUsage
	}

	reg := prometheus.NewRegistry()
	if err := d.exp.Register(reg); err != nil {
		logger.Error("Registering metrics failed", "err", err)
		return exitFailed
	}
	handler := d.exp.Handler(exporter.HandlerOptions{Gatherer: reg, Reload: func(context.Context) error { return d.reload() }, EnableLifecycle: o.lifecycle,
		Flows: flowInfo(products)})
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelError)}
	openProbes(srv, handler, exporter.OpenPaths)

	listeners, err := listen(o.web)
	if err != nil {
		logger.Error("Listening failed", "err", err)
		return exitFailed
	}
	addrs := make([]net.Addr, len(listeners))
	for i, l := range listeners {
		addrs[i] = l.Addr()
		logger.Info("Status page", "url", statusURL(l.Addr(), *o.web.WebConfigFile != ""))
	}
	served := make(chan error, 1)
	go func() {
		if listeners == nil {
			served <- web.ListenAndServe(srv, o.web, logger)
			return
		}
		served <- web.ServeMultiple(listeners, srv, o.web, logger)
	}()
	if o.listening != nil {
		o.listening(addrs)
	}
	d.mu.Lock()
	d.apply(first)
	d.mu.Unlock()
	if o.started != nil {
		o.started()
	}

	hup := o.hup
	if hup == nil {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGHUP)
		defer signal.Stop(c)
		hup = c
	}
	for {
		select {
		case <-hup:
			_ = d.reload() // logged by reload
		case err := <-served:
			if errors.Is(err, http.ErrServerClosed) {
				return exitOK
			}
			logger.Error("Serving HTTP failed", "err", err)
			return exitFailed
		case <-ctx.Done():
			logger.Info("Shutting down")
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil {
				logger.Warn("HTTP shutdown", "err", err)
			}
			return exitOK
		}
	}
}

// reload loads the configuration and applies it. On error the running
// configuration stays and flowprobe_config_last_reload_successful drops to 0.
func (d *daemon) reload() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, err := d.prepare()
	if err != nil {
		d.exp.SetReloadStatus(false, time.Now(), err)
		d.log.Error("Configuration not loaded; the running configuration stays", "err", err)
		return err
	}
	d.apply(p)
	return nil
}

// prepare loads and plans the configuration and sets the constant labels
// it asks for; nothing else changes yet.
func (d *daemon) prepare() (*planned, error) {
	p, err := d.load()
	if err != nil {
		return nil, err
	}
	if err := d.exp.SetConstLabels(p.site, p.labels); err != nil {
		return nil, err
	}
	return p, nil
}

// apply switches the scheduler to a prepared configuration.
func (d *daemon) apply(p *planned) {
	if d.auto != nil {
		d.auto.configure(p.trace)
	}
	d.sched.Reconfigure(p.sched)
	d.sched.Update(p.targets)
	d.exp.SetReloadStatus(true, time.Now())
	d.log.Info("Configuration loaded", "targets", len(p.targets), "skipped", p.skipped)
	for _, err := range icmpProblems(p.targets) {
		d.log.Warn("ICMP checks will fail", "err", err)
	}
}

// loadSite reads the site config at path and plans it against the catalog.
func loadSite(cat *catalog.Catalog, path string) (*planned, error) {
	cfg, res, err := planFile(cat, path)
	if err != nil {
		return nil, err
	}
	return fromPlan(cfg, res), nil
}

func fromPlan(cfg *site.Config, res *site.PlanResult) *planned {
	return &planned{
		targets: res.Targets, skipped: len(res.Skipped), site: cfg.Site, labels: cfg.Labels,
		sched: schedulerConfig(cfg.Scheduler), trace: cfg.Trace,
	}
}

// schedulerConfig maps the site config's scheduler block to the
// scheduler's policy.
func schedulerConfig(s site.SchedulerConfig) scheduler.Config {
	return scheduler.Config{
		MaxInFlight: s.MaxInFlight, MaxInFlightPerHost: s.MaxInFlightPerHost, Jitter: s.Jitter,
		FailingInterval: s.FailingInterval, FailuresBeforeDown: s.FailuresBeforeDown,
	}
}

// storeSink feeds the exporter's store from the scheduler, and logs each
// result at debug level.
type storeSink struct {
	s     *exporter.Store
	after func(scheduler.Status) // optional, called after storing
	log   *slog.Logger
}

func (k storeSink) SetTargets(ts []probe.Target) { k.s.SetTargets(ts) }

func (k storeSink) Record(st scheduler.Status) {
	k.s.Record(exporter.Record{Target: st.Target, Result: st.Result, Up: st.Up, ConsecutiveFailures: st.ConsecutiveFailures})
	if k.log != nil && k.log.Enabled(context.Background(), slog.LevelDebug) {
		r := &st.Result
		k.log.Debug("Check finished", "target", st.Target.ID, "outcome", r.Outcome, "success", r.Success,
			"duration", r.Duration, "details", r.Details, "err", r.Err, "options", st.Target.Options)
	}
	if k.after != nil {
		k.after(st)
	}
}

// listen opens the TCP listeners of --web.listen-address, so the bound
// address (port 0) can be logged. It returns nil, nil for systemd socket
// activation and vsock addresses, which web.ListenAndServe handles.
func listen(f *web.FlagConfig) ([]net.Listener, error) {
	if f.WebSystemdSocket != nil && *f.WebSystemdSocket {
		return nil, nil
	}
	for _, a := range *f.WebListenAddresses {
		if strings.HasPrefix(a, "vsock://") {
			return nil, nil
		}
	}
	var ls []net.Listener
	for _, a := range *f.WebListenAddresses {
		l, err := net.Listen("tcp", a)
		if err != nil {
			for _, l := range ls {
				l.Close()
			}
			return nil, fmt.Errorf("listen on %s: %w", a, err)
		}
		ls = append(ls, l)
	}
	return ls, nil
}

// statusURL is where a browser on this machine finds the status page.
func statusURL(a net.Addr, tls bool) string {
	scheme := "http"
	if tls {
		scheme = "https" // when the web config enables TLS
	}
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return scheme + "://" + a.String() + "/"
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return scheme + "://" + net.JoinHostPort(host, port) + "/"
}
