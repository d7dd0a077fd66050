package exporter

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/probe/report"
)

//go:embed templates/*.html
var templateFS embed.FS

var statusTemplate = template.Must(template.New("status.html").Funcs(template.FuncMap{
	"ms":  func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) },
	"age": age,
}).ParseFS(templateFS, "templates/*.html"))

// OpenPaths are the routes a liveness or readiness probe calls. They reveal
// nothing but whether the process serves and has run its checks, so they
// are served without the basic authentication of --web.config.file.
var OpenPaths = []string{"/-/healthy", "/-/ready"}

// HandlerOptions configure the HTTP routes.
type HandlerOptions struct {
	// Gatherer serves /metrics in formats other than text (protobuf); it
	// must be the registry the exporter was registered with and hold
	// nothing else, since the text format is written from the exporter
	// alone.
	Gatherer prometheus.Gatherer
	// Reload re-reads the configuration for POST /-/reload. It returns an
	// error, and keeps the running configuration, when the new one is bad.
	// nil answers 501.
	Reload func(ctx context.Context) error
	// EnableLifecycle allows POST /-/reload (--web.enable-lifecycle);
	// without it the route answers 403 and only SIGHUP reloads.
	EnableLifecycle bool
	// RefreshSeconds is the status page's auto-refresh period; 0 means 10.
	RefreshSeconds int
	// Now is the clock of the status page's "ago" column; nil is time.Now.
	Now func() time.Time
	// Flows describes a flow on the status page (its purpose and the
	// vendor's ports); nil leaves that out.
	Flows func(product, flow string) FlowInfo
}

// Handler returns the HTTP routes of `flowprobe serve`:
//
//	GET  /                 the status page (flow matrix)
//	GET  /metrics          Prometheus metrics
//	GET  /api/v1/results   the latest result of every target, as JSON
//	GET  /-/healthy        200 while the process serves
//	GET  /-/ready          503 until every target finished its first run, then 200
//	POST /-/reload         reload the configuration; 500 with the error if it is bad;
//	                       403 unless EnableLifecycle
//
// The probe endpoints (OpenPaths) are meant to be served without
// authentication; every other route sits behind the web configuration.
func (e *Exporter) Handler(o HandlerOptions) http.Handler {
	if o.RefreshSeconds <= 0 {
		o.RefreshSeconds = 10
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", e.metricsHandler(o.Gatherer, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(e.log.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
	}))
	mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "Healthy.")
	})
	mux.HandleFunc("GET /-/ready", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		ready, done, total := e.store.Ready()
		if !ready {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "Not ready: %d of %d targets finished their first run.\n", done, total)
			return
		}
		fmt.Fprintln(w, "Ready.")
	})
	mux.HandleFunc("/-/reload", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "Only POST reloads the configuration.", http.StatusMethodNotAllowed)
			return
		}
		if !o.EnableLifecycle {
			http.Error(w, "Lifecycle API is not enabled: start flowprobe serve with --web.enable-lifecycle to reload over HTTP, or send SIGHUP.", http.StatusForbidden)
			return
		}
		if o.Reload == nil {
			http.Error(w, "Reloading is not available.", http.StatusNotImplemented)
			return
		}
		if err := o.Reload(r.Context()); err != nil {
			http.Error(w, fmt.Sprintf("Reload failed, the running configuration stays: %v", err), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "Reloaded.")
	})
	mux.HandleFunc("GET /api/v1/results", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewEncoder(w).Encode(e.results()); err != nil {
			e.log.Debug("Writing results failed", "err", err)
		}
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := statusTemplate.Execute(w, e.statusPage(o.Now(), o.RefreshSeconds, parseFilter(r.URL.Query()), o.Flows)); err != nil {
			e.log.Debug("Writing the status page failed", "err", err)
		}
	})
	return mux
}

// Result is one item of /api/v1/results: the report.Result of the latest
// run (whose success is that run's own verdict) plus the debounced verdict
// that flowprobe_check_success exports.
type Result struct {
	report.Result
	Up                  bool `json:"up"`
	ConsecutiveFailures int  `json:"consecutive_failures"`
	// History are the target's recent runs, oldest first (at most
	// HistoryLength).
	History []HistoryPoint `json:"history"`
}

// results lists the targets that finished a run, in Snapshot order.
func (e *Exporter) results() []Result {
	snap := e.store.Snapshot()
	out := make([]Result, 0, len(snap))
	for _, en := range snap {
		if en.HasResult {
			r := Result{Result: report.NewResult(en.Target, en.Result), Up: en.Up, ConsecutiveFailures: en.ConsecutiveFailures,
				History: e.store.History(en.Target.ID)}
			if en.Trace != nil {
				tr := en.Trace.Trace
				tr.Time = en.Trace.At
				r.Trace = &tr
			}
			out = append(out, r)
		}
	}
	return out
}

// pageState is what the status page shows beside the results: the errors
// of the last configuration reload while it failed.
type pageState struct {
	mu       sync.Mutex
	failed   bool      // the last (re)load failed
	failedAt time.Time // when
	errs     []string  // its error lines, sanitised and bounded
}

// Bounds of the reload errors kept for the status page.
const (
	reloadErrorLines    = 20
	reloadErrorLineRune = 300
)

// setReload records a (re)load: a success clears the banner; a failure
// keeps the text of errs, one line per line of their messages, with peer
// or file bytes made printable (report.Sanitize; the template escapes
// HTML) and at most reloadErrorLines lines of reloadErrorLineRune runes.
func (p *pageState) setReload(ok bool, at time.Time, errs []error) {
	var lines []string
	more := 0
	for _, err := range errs {
		if err == nil {
			continue
		}
		for l := range strings.SplitSeq(err.Error(), "\n") {
			if l = strings.TrimSpace(l); l == "" {
				continue
			}
			if len(lines) == reloadErrorLines {
				more++
				continue
			}
			if r := []rune(l); len(r) > reloadErrorLineRune {
				l = string(r[:reloadErrorLineRune]) + "…"
			}
			lines = append(lines, report.Sanitize(l))
		}
	}
	if more > 0 {
		lines = append(lines, fmt.Sprintf("… and %d more lines (see the log)", more))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failed = !ok
	p.failedAt = at
	p.errs = nil
	if !ok {
		p.errs = lines
	}
}

// The status page's view model.
type (
	statusPage struct {
		Refresh            int
		Generated          string
		Up, Down, Pending  int
		Products           []productView
		NoTargets, Ready   bool
		Done, TotalTargets int
		// The flow map, filters and site line: statusview.go.
		Site        siteView
		Filter      statusFilter
		AllProducts []string
		AllRoles    []string
		Maps        []flowMapView
		// ReloadFailed shows the banner of a failed reload: the running
		// configuration stays; ReloadErrors are its error lines.
		ReloadFailed   bool
		ReloadFailedAt string
		ReloadErrors   []string
	}
	productView struct {
		Name  string
		Up    int
		Total int
		Pairs []pairView
		Map   flowMapView // statusview.go
	}
	pairView struct {
		Source, Destination string
		Rows                []rowView
	}
	rowView struct {
		Flow, Target, Protocol, Check string
		Expect                        probe.Expect
		Required                      probe.Requirement
		State                         string // up, down, pending
		Outcome                       string
		Meaning                       string
		Latency                       time.Duration
		Ago                           string
		Error                         string
		Responder                     bool
		Failures                      int
		// Anchor is the row's id; Hint says in plain words what a failing
		// outcome usually means here; History is the strip of recent runs;
		// Info comes from the catalog.
		Anchor  string
		Hint    string
		History historyView
		Info    FlowInfo
		// Trace is the verdict of the automatic path trace of a failed
		// flow, TraceAgo when it finished.
		Trace, TraceAgo string
	}
)

func (e *Exporter) statusPage(now time.Time, refresh int, filter statusFilter, info func(product, flow string) FlowInfo) statusPage {
	snap := e.store.Snapshot()
	ready, done, total := e.store.Ready()
	page := statusPage{Refresh: refresh, Generated: now.Format(time.RFC3339), NoTargets: len(snap) == 0, Ready: ready, Done: done, TotalTargets: total,
		Site: e.siteView(now), Filter: filter}
	e.page.mu.Lock()
	if e.page.failed {
		page.ReloadFailed = true
		page.ReloadFailedAt = age(now.Sub(e.page.failedAt))
		page.ReloadErrors = e.page.errs
	}
	e.page.mu.Unlock()
	for _, en := range snap {
		t := en.Target
		row := rowView{Flow: t.Flow, Target: t.Address(), Protocol: string(t.Protocol), Check: t.Check, Expect: t.Expect, Required: t.Required, State: "pending", Anchor: anchor(t.ID)}
		if en.HasResult {
			r := en.Result
			row.State = "down"
			if en.Up {
				row.State = "up"
			}
			row.Outcome = r.Outcome.String()
			row.Meaning = r.Outcome.Meaning()
			row.Latency = r.Duration
			row.Ago = age(now.Sub(r.Start))
			row.Error = r.Error()
			row.Responder = r.Details[probe.DetailResponder] == "true"
			row.Failures = en.ConsecutiveFailures
			row.Hint = probe.Hint(&t, &r)
			row.History = newHistoryView(e.store.History(t.ID))
			if en.Trace != nil && !en.Up {
				row.Trace, row.TraceAgo = en.Trace.Trace.Verdict, age(now.Sub(en.Trace.At))
			}
		}
		if info != nil {
			row.Info = info(t.Product, t.Flow)
		}
		switch row.State {
		case "up":
			page.Up++
		case "down":
			page.Down++
		default:
			page.Pending++
		}
		if !slices.Contains(page.AllProducts, t.Product) {
			page.AllProducts = append(page.AllProducts, t.Product)
		}
		for _, role := range []string{t.Source, t.Destination} {
			if !slices.Contains(page.AllRoles, role) {
				page.AllRoles = append(page.AllRoles, role)
			}
		}
		if !filter.keep(&t, row.State) {
			continue
		}
		if n := len(page.Products); n == 0 || page.Products[n-1].Name != t.Product {
			page.Products = append(page.Products, productView{Name: t.Product})
		}
		pv := &page.Products[len(page.Products)-1]
		pv.Total++
		if row.State == "up" {
			pv.Up++
		}
		// Pairs are grouped in order of first appearance within the product.
		idx := -1
		for i, p := range pv.Pairs {
			if p.Source == t.Source && p.Destination == t.Destination {
				idx = i
				break
			}
		}
		if idx < 0 {
			pv.Pairs = append(pv.Pairs, pairView{Source: t.Source, Destination: t.Destination})
			idx = len(pv.Pairs) - 1
		}
		pv.Pairs[idx].Rows = append(pv.Pairs[idx].Rows, row)
	}
	slices.Sort(page.AllRoles)
	for i := range page.Products {
		page.Products[i].Map = buildMap(&page.Products[i], info)
	}
	return page
}

// age renders a duration for humans: "4s ago", "3m ago", "2h ago".
func age(d time.Duration) string {
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	default:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
}
