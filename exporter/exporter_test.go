package exporter

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flowprobe/flowprobe/probe"
)

var start = time.Unix(1_800_000_000, 250_000_000)

// secretOptions stands for a check kind's options with a credential in it.
type secretOptions struct {
	BindDN   string
	Password string
}

func ldapTarget() probe.Target {
	return probe.Target{
		ID: probe.MakeID("sios-lifekeeper", "ldap", "dc1.example.org", 636, probe.TCP, "ldap"), Product: "sios-lifekeeper",
		Flow: "ldap", Source: "node", Destination: "directory", Host: "dc1.example.org", Port: 636,
		Protocol: probe.TCP, Check: "ldap", Options: &secretOptions{BindDN: "cn=probe", Password: "hunter2-secret"},
		Interval: 30 * time.Second, Timeout: 5 * time.Second, Required: probe.Required,
	}
}

func icmpTarget() probe.Target {
	return probe.Target{
		ID: probe.MakeID("sios-lifekeeper", "ping", "192.0.2.7", 0, probe.ICMP, "icmp"), Product: "sios-lifekeeper",
		Flow: "ping", Source: "node", Destination: "node", Host: "192.0.2.7", Protocol: probe.ICMP, Check: "icmp",
		Interval: 30 * time.Second, Timeout: 5 * time.Second,
	}
}

func okResult() probe.Result {
	r := probe.Result{Outcome: probe.OutcomeOK, Success: true, Start: start, Duration: 12 * time.Millisecond}
	r.Phases[probe.PhaseResolve] = 1 * time.Millisecond
	r.Phases[probe.PhaseConnect] = 2 * time.Millisecond
	r.Phases[probe.PhaseTLS] = 5 * time.Millisecond
	r.SetValue("tls_cert_expiry_timestamp_seconds", 1_900_000_000)
	return r
}

func timeoutResult(msg string) probe.Result {
	return probe.Result{Outcome: probe.OutcomeTimeout, Start: start.Add(time.Second), Duration: 5 * time.Second, Err: errors.New(msg)}
}

func TestCollectExposition(t *testing.T) {
	e := New(Options{ValueHelp: map[string]string{"tls_cert_expiry_timestamp_seconds": "NotAfter of the peer's leaf certificate, as a Unix timestamp."}, Stats: func() SchedulerStats {
		return SchedulerStats{Targets: 1, InFlight: 3, LagCount: 4, LagSum: 0.5, LagBuckets: map[float64]uint64{0.01: 1, 1: 4}}
	}})
	if err := e.SetConstLabels("berlin", map[string]string{"env": "prod"}); err != nil {
		t.Fatal(err)
	}
	e.SetReloadStatus(true, time.Unix(1_799_999_000, 0))
	s := e.Store()
	tg := ldapTarget()
	s.SetTargets([]probe.Target{tg})
	s.Record(Record{Target: tg, Result: okResult(), Up: true})
	// The latest run timed out but the failure threshold keeps the flow up.
	s.Record(Record{Target: tg, Result: func() probe.Result { r := okResult(); r.Outcome, r.Success = probe.OutcomeTimeout, false; return r }(), Up: true, ConsecutiveFailures: 1})

	const (
		labels = `check="ldap",destination="directory",env="prod",flow="ldap",port="636",product="sios-lifekeeper",protocol="tcp",site="berlin",source="node",target="dc1.example.org:636"`
		before = `check="ldap",destination="directory",env="prod",flow="ldap",`
		after  = `port="636",product="sios-lifekeeper",protocol="tcp",site="berlin",source="node",target="dc1.example.org:636"`
	)
	expected := `
# HELP flowprobe_check_consecutive_failures Failed runs since the last passing one.
# TYPE flowprobe_check_consecutive_failures gauge
flowprobe_check_consecutive_failures{` + labels + `} 1
# HELP flowprobe_check_duration_seconds Duration of the latest run in seconds.
# TYPE flowprobe_check_duration_seconds gauge
flowprobe_check_duration_seconds{` + labels + `} 0.012
# HELP flowprobe_check_expect_deny 1 if the flow must be blocked (expect: deny), else 0.
# TYPE flowprobe_check_expect_deny gauge
flowprobe_check_expect_deny{` + labels + `} 0
# HELP flowprobe_check_failures_total Failed runs (verdict false) of the check since the target was configured, by outcome.
# TYPE flowprobe_check_failures_total counter
flowprobe_check_failures_total{` + before + `outcome="auth_error",` + after + `} 0
flowprobe_check_failures_total{` + before + `outcome="dns_error",` + after + `} 0
flowprobe_check_failures_total{` + before + `outcome="local_error",` + after + `} 0
flowprobe_check_failures_total{` + before + `outcome="no_response",` + after + `} 0
flowprobe_check_failures_total{` + before + `outcome="ok",` + after + `} 0
flowprobe_check_failures_total{` + before + `outcome="protocol_error",` + after + `} 0
flowprobe_check_failures_total{` + before + `outcome="refused",` + after + `} 0
flowprobe_check_failures_total{` + before + `outcome="service_timeout",` + after + `} 0
flowprobe_check_failures_total{` + before + `outcome="timeout",` + after + `} 1
flowprobe_check_failures_total{` + before + `outcome="tls_error",` + after + `} 0
flowprobe_check_failures_total{` + before + `outcome="unreachable",` + after + `} 0
# HELP flowprobe_check_last_run_timestamp_seconds Start of the latest run as a Unix timestamp.
# TYPE flowprobe_check_last_run_timestamp_seconds gauge
flowprobe_check_last_run_timestamp_seconds{` + labels + `} 1.80000000025e+09
# HELP flowprobe_check_outcome Outcome of the latest run, one-hot over every outcome (not debounced).
# TYPE flowprobe_check_outcome gauge
flowprobe_check_outcome{` + before + `outcome="auth_error",` + after + `} 0
flowprobe_check_outcome{` + before + `outcome="dns_error",` + after + `} 0
flowprobe_check_outcome{` + before + `outcome="local_error",` + after + `} 0
flowprobe_check_outcome{` + before + `outcome="no_response",` + after + `} 0
flowprobe_check_outcome{` + before + `outcome="ok",` + after + `} 0
flowprobe_check_outcome{` + before + `outcome="protocol_error",` + after + `} 0
flowprobe_check_outcome{` + before + `outcome="refused",` + after + `} 0
flowprobe_check_outcome{` + before + `outcome="service_timeout",` + after + `} 0
flowprobe_check_outcome{` + before + `outcome="timeout",` + after + `} 1
flowprobe_check_outcome{` + before + `outcome="tls_error",` + after + `} 0
flowprobe_check_outcome{` + before + `outcome="unreachable",` + after + `} 0
# HELP flowprobe_check_phase_duration_seconds Duration of each phase of the latest run that went through it, in seconds.
# TYPE flowprobe_check_phase_duration_seconds gauge
flowprobe_check_phase_duration_seconds{` + before + `phase="connect",` + after + `} 0.002
flowprobe_check_phase_duration_seconds{` + before + `phase="resolve",` + after + `} 0.001
flowprobe_check_phase_duration_seconds{` + before + `phase="tls",` + after + `} 0.005
# HELP flowprobe_check_success 1 if the flow passes (judged against its expectation, after the failure threshold), else 0.
# TYPE flowprobe_check_success gauge
flowprobe_check_success{` + labels + `} 1
# HELP flowprobe_checks_in_flight Checks running right now.
# TYPE flowprobe_checks_in_flight gauge
flowprobe_checks_in_flight{env="prod",site="berlin"} 3
# HELP flowprobe_checks_total Runs of the check since the target was configured.
# TYPE flowprobe_checks_total counter
flowprobe_checks_total{` + labels + `} 2
# HELP flowprobe_config_last_reload_success_timestamp_seconds Time of the last successful configuration load or reload, as a Unix timestamp.
# TYPE flowprobe_config_last_reload_success_timestamp_seconds gauge
flowprobe_config_last_reload_success_timestamp_seconds{env="prod",site="berlin"} 1.799999e+09
# HELP flowprobe_config_last_reload_successful 1 if the last configuration load or reload succeeded, else 0.
# TYPE flowprobe_config_last_reload_successful gauge
flowprobe_config_last_reload_successful{env="prod",site="berlin"} 1
# HELP flowprobe_scheduler_lag_seconds How late runs started against their planned time, including the wait for a concurrency slot.
# TYPE flowprobe_scheduler_lag_seconds histogram
flowprobe_scheduler_lag_seconds_bucket{env="prod",site="berlin",le="0.01"} 1
flowprobe_scheduler_lag_seconds_bucket{env="prod",site="berlin",le="1"} 4
flowprobe_scheduler_lag_seconds_bucket{env="prod",site="berlin",le="+Inf"} 4
flowprobe_scheduler_lag_seconds_sum{env="prod",site="berlin"} 0.5
flowprobe_scheduler_lag_seconds_count{env="prod",site="berlin"} 4
# HELP flowprobe_targets Targets configured.
# TYPE flowprobe_targets gauge
flowprobe_targets{env="prod",site="berlin"} 1
# HELP flowprobe_tls_cert_expiry_timestamp_seconds NotAfter of the peer's leaf certificate, as a Unix timestamp.
# TYPE flowprobe_tls_cert_expiry_timestamp_seconds gauge
flowprobe_tls_cert_expiry_timestamp_seconds{` + labels + `} 1.9e+09
`
	if err := testutil.CollectAndCompare(e, strings.NewReader(expected)); err != nil {
		t.Fatal(err)
	}
	problems, err := testutil.CollectAndLint(e)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestICMPTargetHasNoPortAndPendingTargetsHaveNoSeries(t *testing.T) {
	e := New(Options{})
	s := e.Store()
	icmp, ldap := icmpTarget(), ldapTarget()
	s.SetTargets([]probe.Target{icmp, ldap})
	s.Record(Record{Target: icmp, Result: timeoutResult("no echo reply"), Up: false, ConsecutiveFailures: 1})
	expected := `
# HELP flowprobe_check_success 1 if the flow passes (judged against its expectation, after the failure threshold), else 0.
# TYPE flowprobe_check_success gauge
flowprobe_check_success{check="icmp",destination="node",flow="ping",port="",product="sios-lifekeeper",protocol="icmp",source="node",target="192.0.2.7"} 0
`
	if err := testutil.CollectAndCompare(e, strings.NewReader(expected), "flowprobe_check_success"); err != nil {
		t.Fatal(err)
	}
}

func TestReloadRemovesSeriesAndResetsChangedTargets(t *testing.T) {
	e := New(Options{})
	s := e.Store()
	icmp, ldap := icmpTarget(), ldapTarget()
	s.SetTargets([]probe.Target{icmp, ldap})
	s.Record(Record{Target: icmp, Result: timeoutResult("x"), ConsecutiveFailures: 1})
	s.Record(Record{Target: ldap, Result: okResult(), Up: true})
	s.Record(Record{Target: ldap, Result: okResult(), Up: true})

	// icmp removed, ldap's options changed (a new password file, say).
	ldap2 := ldap
	ldap2.Options = &secretOptions{BindDN: "cn=other"}
	s.SetTargets([]probe.Target{ldap2})
	s.Record(Record{Target: icmp, Result: timeoutResult("late result of a removed target")})
	if got := testutil.CollectAndCount(e, "flowprobe_check_success", "flowprobe_checks_total"); got != 0 {
		t.Fatalf("%d series after reload, want none: removed targets vanish and changed ones start over", got)
	}
	s.Record(Record{Target: ldap2, Result: okResult(), Up: true})
	expected := `
# HELP flowprobe_checks_total Runs of the check since the target was configured.
# TYPE flowprobe_checks_total counter
flowprobe_checks_total{check="ldap",destination="directory",flow="ldap",port="636",product="sios-lifekeeper",protocol="tcp",source="node",target="dc1.example.org:636"} 1
`
	if err := testutil.CollectAndCompare(e, strings.NewReader(expected), "flowprobe_checks_total"); err != nil {
		t.Fatal(err)
	}

	// Reloading the same settings keeps the counters.
	same := ldap2
	same.Options = &secretOptions{BindDN: "cn=other"}
	s.SetTargets([]probe.Target{same})
	if err := testutil.CollectAndCompare(e, strings.NewReader(expected), "flowprobe_checks_total"); err != nil {
		t.Fatal(err)
	}
}

func TestSetConstLabelsRejectsReservedAndInvalidNames(t *testing.T) {
	e := New(Options{})
	for _, labels := range []map[string]string{{"flow": "x"}, {"outcome": "x"}, {"site": "x"}, {"bad-name": "x"}, {"__name__": "x"}} {
		if err := e.SetConstLabels("", labels); err == nil {
			t.Errorf("SetConstLabels(%v) accepted", labels)
		}
	}
}

func TestRegisterWithRegistry(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	e := New(Options{})
	if err := e.Register(reg); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg, "flowprobe_build_info", "flowprobe_config_last_reload_successful"); err != nil || n != 2 {
		t.Fatalf("gathered %d build_info/reload series (%v), want 2", n, err)
	}
}

func get(t *testing.T, h http.Handler, method, path string) (int, string, http.Header) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body), rec.Result().Header
}

func TestReadyTransitions(t *testing.T) {
	e := New(Options{})
	h := e.Handler(HandlerOptions{Gatherer: prometheus.NewRegistry()})
	want := func(code int, body string) {
		t.Helper()
		if c, b, _ := get(t, h, "GET", "/-/ready"); c != code || b != body {
			t.Fatalf("/-/ready = %d %q, want %d %q", c, b, code, body)
		}
	}
	want(503, "Not ready: 0 of 0 targets finished their first run.\n")
	icmp, ldap := icmpTarget(), ldapTarget()
	e.Store().SetTargets([]probe.Target{icmp, ldap})
	want(503, "Not ready: 0 of 2 targets finished their first run.\n")
	e.Store().Record(Record{Target: icmp, Result: timeoutResult("x")})
	want(503, "Not ready: 1 of 2 targets finished their first run.\n")
	e.Store().Record(Record{Target: ldap, Result: okResult(), Up: true})
	want(200, "Ready.\n")
	e.Store().SetTargets([]probe.Target{icmp, ldap, func() probe.Target { t := icmpTarget(); t.ID, t.Host = "new", "192.0.2.8"; return t }()})
	want(200, "Ready.\n") // a reload does not make a running instance unready
	if c, b, _ := get(t, h, "GET", "/-/healthy"); c != 200 || b != "Healthy.\n" {
		t.Fatalf("/-/healthy = %d %q", c, b)
	}
}

func TestReloadEndpoint(t *testing.T) {
	e := New(Options{})
	var calls int
	var fail error
	reload := func(context.Context) error { calls++; return fail }
	off := e.Handler(HandlerOptions{Gatherer: prometheus.NewRegistry(), Reload: reload})
	if c, b, _ := get(t, off, "POST", "/-/reload"); c != 403 || !strings.Contains(b, "--web.enable-lifecycle") || calls != 0 {
		t.Fatalf("POST /-/reload without the lifecycle API = %d %q, %d reloads; want 403 naming --web.enable-lifecycle, none", c, b, calls)
	}
	h := e.Handler(HandlerOptions{Gatherer: prometheus.NewRegistry(), Reload: reload, EnableLifecycle: true})
	if c, _, hdr := get(t, h, "GET", "/-/reload"); c != 405 || hdr.Get("Allow") != "POST" || calls != 0 {
		t.Fatalf("GET /-/reload = %d Allow=%q, %d reloads; want 405, POST, none", c, hdr.Get("Allow"), calls)
	}
	if c, b, _ := get(t, h, "POST", "/-/reload"); c != 200 || b != "Reloaded.\n" || calls != 1 {
		t.Fatalf("POST /-/reload = %d %q", c, b)
	}
	fail = errors.New("site.yml:3: unknown key \"prodcts\"")
	if c, b, _ := get(t, h, "POST", "/-/reload"); c != 500 || !strings.Contains(b, `site.yml:3: unknown key "prodcts"`) {
		t.Fatalf("POST /-/reload with a bad config = %d %q, want 500 with the error", c, b)
	}
}

func TestResultsAPIAndStatusPage(t *testing.T) {
	e := New(Options{})
	reg := prometheus.NewRegistry()
	if err := e.Register(reg); err != nil {
		t.Fatal(err)
	}
	icmp, ldap := icmpTarget(), ldapTarget()
	e.Store().SetTargets([]probe.Target{ldap, icmp})
	e.Store().Record(Record{Target: icmp, Result: timeoutResult(`read ip4 <script>alert("x")</script>`), ConsecutiveFailures: 1})
	h := e.Handler(HandlerOptions{Gatherer: reg, Now: func() time.Time { return start.Add(41 * time.Second) }})

	code, body, hdr := get(t, h, "GET", "/api/v1/results")
	if code != 200 || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("/api/v1/results = %d %s", code, hdr.Get("Content-Type"))
	}
	var got []map[string]any
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0]["target"] != "192.0.2.7" || got[0]["outcome"] != "timeout" || got[0]["up"] != false ||
		got[0]["consecutive_failures"] != float64(1) || got[0]["error"] != `read ip4 <script>alert("x")</script>` {
		t.Fatalf("/api/v1/results = %s, want the one finished target with its outcome, verdict and error", body)
	}

	code, page, _ := get(t, h, "GET", "/")
	if code != 200 {
		t.Fatalf("/ = %d", code)
	}
	for _, want := range []string{
		"<h2>sios-lifekeeper", "node → node", "node → directory", "192.0.2.7/icmp", "dc1.example.org:636/tcp",
		`<tr class="down"`, `<tr class="pending"`, "timeout", "5000.0 ms", "40s ago",
		"read ip4 &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;", `name="viewport"`, `http-equiv="refresh"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("status page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script>alert") {
		t.Error("status page carries an unescaped <script>")
	}
	if c, _, _ := get(t, h, "GET", "/nothing-here"); c != 404 {
		t.Errorf("/nothing-here = %d, want 404", c)
	}

	e.Store().Record(Record{Target: ldap, Result: okResult(), Up: true})
	_, metrics, _ := get(t, h, "GET", "/metrics")
	_, body, _ = get(t, h, "GET", "/api/v1/results")
	_, page, _ = get(t, h, "GET", "/")
	for what, text := range map[string]string{"metrics": metrics, "JSON": body, "status page": page} {
		if strings.Contains(text, "hunter2") || strings.Contains(text, "cn=probe") {
			t.Errorf("the %s shows the target's options", what)
		}
	}
	if !strings.Contains(metrics, "flowprobe_check_success{") {
		t.Errorf("/metrics lacks flowprobe_check_success:\n%s", metrics)
	}
}

// A flow that must be blocked says so in flowprobe_check_expect_deny, so
// that an alert can tell a deny violation (an open path) from a failure.
func TestDenyFlowExportsItsExpectation(t *testing.T) {
	e := New(Options{})
	s := e.Store()
	deny, allow := icmpTarget(), ldapTarget()
	deny.Expect = probe.ExpectDeny
	s.SetTargets([]probe.Target{deny, allow})
	s.Record(Record{Target: deny, Result: okResult(), Up: false, ConsecutiveFailures: 1})
	s.Record(Record{Target: allow, Result: okResult(), Up: true})
	expected := `
# HELP flowprobe_check_expect_deny 1 if the flow must be blocked (expect: deny), else 0.
# TYPE flowprobe_check_expect_deny gauge
flowprobe_check_expect_deny{check="icmp",destination="node",flow="ping",port="",product="sios-lifekeeper",protocol="icmp",source="node",target="192.0.2.7"} 1
flowprobe_check_expect_deny{check="ldap",destination="directory",flow="ldap",port="636",product="sios-lifekeeper",protocol="tcp",source="node",target="dc1.example.org:636"} 0
`
	if err := testutil.CollectAndCompare(e, strings.NewReader(expected), "flowprobe_check_expect_deny"); err != nil {
		t.Fatal(err)
	}
}

func TestShardInfo(t *testing.T) {
	e := New(Options{ShardIndex: 1, ShardCount: 3})
	reg := prometheus.NewRegistry()
	if err := e.Register(reg); err != nil {
		t.Fatal(err)
	}
	_, body, _ := get(t, e.Handler(HandlerOptions{Gatherer: reg}), "GET", "/metrics")
	if !strings.Contains(body, "\nflowprobe_shard_info{shard=\"1\",shards=\"3\"} 1\n") {
		t.Errorf("/metrics lacks the shard series:\n%s", body)
	}
	if _, body, _ := get(t, New(Options{}).Handler(HandlerOptions{Gatherer: prometheus.NewRegistry()}), "GET", "/metrics"); strings.Contains(body, "shard_info") {
		t.Errorf("an unsharded instance exports shard_info:\n%s", body)
	}
}
