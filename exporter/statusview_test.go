package exporter

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowprobe/flowprobe/probe"
)

// statusSite is a small site of two products: flows between three roles,
// one flow with two targets, passing and failing results.
func statusSite(t *testing.T) (*Exporter, []probe.Target) {
	t.Helper()
	e := New(Options{})
	if err := e.SetConstLabels("berlin", nil); err != nil {
		t.Fatal(err)
	}
	e.SetReloadStatus(true, start)
	mk := func(product, flow, src, dst, host string, port int) probe.Target {
		return probe.Target{ID: probe.MakeID(product, flow, host, port, probe.TCP, "tcp"), Product: product, Flow: flow, Source: src, Destination: dst,
			Host: host, Port: port, Protocol: probe.TCP, Check: "tcp", Expect: probe.ExpectAllow, Interval: time.Minute, Timeout: time.Second}
	}
	ts := []probe.Target{
		mk("sios-lifekeeper", "comm-path", "node", "node", "192.0.2.1", 7365),
		mk("sios-lifekeeper", "comm-path", "node", "node", "192.0.2.2", 7365),
		mk("sios-lifekeeper", "lkpolicy", "node", "node", "192.0.2.2", 778),
		mk("sios-lifekeeper", "gui-server-81", "gui-client", "node", "192.0.2.1", 81),
		mk("xenserver", "xapi", "admin", "host", "192.0.2.9", 443),
	}
	e.Store().SetTargets(ts)
	refused := probe.Result{Outcome: probe.OutcomeRefused, Start: start, Duration: time.Millisecond,
		Err: errors.New("dial tcp 192.0.2.2:7365: connect: connection refused")}
	for i := range 3 {
		for j, tg := range ts {
			r := probe.Result{Outcome: probe.OutcomeOK, Success: true, Start: start.Add(time.Duration(i) * time.Minute), Duration: time.Millisecond}
			if j == 1 {
				r = refused
			}
			e.Store().Record(Record{Target: tg, Result: r, Up: r.Success})
		}
	}
	return e, ts
}

func statusHandler(e *Exporter) func(t *testing.T, path string) string {
	return func(t *testing.T, path string) string {
		t.Helper()
		h := e.Handler(HandlerOptions{Gatherer: prometheus.NewRegistry(), Now: func() time.Time { return start.Add(5 * time.Minute) },
			Flows: func(product, flow string) FlowInfo {
				if flow == "comm-path" {
					return FlowInfo{Purpose: "Communication path between cluster nodes", Ports: "7365/tcp"}
				}
				return FlowInfo{}
			}})
		code, body, _ := get(t, h, "GET", path)
		if code != 200 {
			t.Fatalf("GET %s = %d", path, code)
		}
		return body
	}
}

func TestStatusPageFlowMap(t *testing.T) {
	e, _ := statusSite(t)
	page := statusHandler(e)(t, "/")
	// One map per product, one edge per flow (comm-path has two targets).
	if n := strings.Count(page, `class="flowmap"`); n != 2 {
		t.Errorf("%d flow maps, want one per product (2)", n)
	}
	if n := strings.Count(page, `<a href="#t-`); n != 4 {
		t.Errorf("%d map edges, want one per flow (4):\n%s", n, page)
	}
	for _, want := range []string{
		`class="edge down" data-flow="comm-path"`, // any failing target fails the edge
		`✗ comm-path</text>`, `✓ lkpolicy</text>`, // a symbol, not colour alone
		"✗ comm-path, node → node: failing (1 of 2 targets pass); catalog port 7365/tcp; Communication path between cluster nodes",
		`title="catalog port 7365/tcp: Communication path between cluster nodes"`,
		`<svg viewBox="0 0 520 `, `role="img"`, "The map as text",
		"site <strong>berlin</strong>", "configuration loaded 5m ago",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("status page lacks %q", want)
		}
	}
}

func TestStatusPageExplainsFailures(t *testing.T) {
	e, _ := statusSite(t)
	page := statusHandler(e)(t, "/")
	// The raw error is shown, but never alone: the hint says it in plain words.
	if !strings.Contains(page, "connection refused") {
		t.Fatal("status page lacks the refused target's error")
	}
	tg := probe.Target{Check: "tcp"}
	hint := probe.Hint(&tg, &probe.Result{Outcome: probe.OutcomeRefused})
	if hint == "" || !strings.Contains(page, `<td data-label="Hint" class="hint">`+hint+"</td>") {
		t.Errorf("status page lacks the plain-words hint %q", hint)
	}
	e.SetReloadStatus(false, start.Add(time.Minute))
	if page := statusHandler(e)(t, "/"); !strings.Contains(page, "the last configuration reload failed") {
		t.Error("status page does not say that the last reload failed")
	}
}

func TestStatusPageFilters(t *testing.T) {
	e, _ := statusSite(t)
	get := statusHandler(e)
	rows := func(page string) int { return strings.Count(page, `<tr class="`) }
	if n := rows(get(t, "/")); n != 5 {
		t.Fatalf("unfiltered page has %d rows, want 5", n)
	}
	for path, want := range map[string]int{
		"/?failing=1":                      1,
		"/?product=xenserver":              1,
		"/?role=gui-client":                1,
		"/?role=node":                      4,
		"/?product=sios-lifekeeper&role=x": 0,
	} {
		page := get(t, path)
		if n := rows(page); n != want {
			t.Errorf("%s: %d rows, want %d", path, n, want)
		}
		if !strings.Contains(page, `data-filtered="1"`) || !strings.Contains(page, `<a href="./">show all</a>`) {
			t.Errorf("%s: the form does not show the filter as applied", path)
		}
	}
	if page := get(t, "/?failing=1"); !strings.Contains(page, `name="failing" value="1" checked`) || strings.Count(page, `<a href="#t-`) != 1 {
		t.Error("failing=1 does not keep the box checked or narrow the map")
	}
	if page := get(t, "/?product=sios-lifekeeper&role=x"); !strings.Contains(page, "No flow matches the filter.") {
		t.Error("an empty filter result says nothing")
	}
}

func TestHistoryBounded(t *testing.T) {
	e, ts := statusSite(t)
	tg := ts[0]
	for i := range 2 * HistoryLength {
		r := probe.Result{Outcome: probe.OutcomeOK, Success: true, Start: start.Add(time.Duration(i) * time.Second), Duration: time.Millisecond}
		if i%7 == 0 {
			r = probe.Result{Outcome: probe.OutcomeTimeout, Start: r.Start, Duration: time.Second}
		}
		e.Store().Record(Record{Target: tg, Result: r, Up: true})
	}
	h := e.Store().History(tg.ID)
	if len(h) != HistoryLength {
		t.Fatalf("history has %d runs, want %d", len(h), HistoryLength)
	}
	if last := h[len(h)-1]; !last.Time.Equal(start.Add(time.Duration(2*HistoryLength-1)*time.Second)) || last.Outcome != probe.OutcomeOK {
		t.Errorf("newest run %+v, want the last recorded", last)
	}
	for i := 1; i < len(h); i++ {
		if !h[i].Time.After(h[i-1].Time) {
			t.Fatalf("history is not oldest first at %d: %v", i, h)
		}
	}

	page := statusHandler(e)(t, "/")
	_, strip, _ := strings.Cut(page, `id="`+anchor(tg.ID)+`"`)
	strip, _, _ = strings.Cut(strip, "</tr>")
	if n := strings.Count(strip, "▁") + strings.Count(strip, "█"); n != HistoryLength {
		t.Errorf("history strip has %d bars, want %d:\n%s", n, HistoryLength, strip)
	}
	if !strings.Contains(strip, fmt.Sprintf(`aria-label="last %d runs: `, HistoryLength)) {
		t.Errorf("history strip has no text alternative:\n%s", strip)
	}

	_, body, _ := get(t, e.Handler(HandlerOptions{Gatherer: prometheus.NewRegistry()}), "GET", "/api/v1/results")
	var rs []struct {
		Target  string `json:"target"`
		History []struct {
			Time     time.Time `json:"time"`
			Outcome  string    `json:"outcome"`
			Success  *bool     `json:"success"`
			Duration *float64  `json:"duration"`
		} `json:"history"`
	}
	if err := json.Unmarshal([]byte(body), &rs); err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Target == tg.Address() {
			if len(r.History) != HistoryLength || r.History[0].Success == nil || r.History[0].Duration == nil || r.History[0].Outcome == "" {
				t.Errorf("API history of %s: %+v", r.Target, r.History)
			}
		} else if len(r.History) != 3 {
			t.Errorf("API history of %s has %d runs, want 3", r.Target, len(r.History))
		}
	}

	// A reload that drops the target drops its history.
	e.Store().SetTargets(ts[1:])
	if h := e.Store().History(tg.ID); h != nil {
		t.Errorf("history of a removed target: %v", h)
	}
	if h := e.Store().History(ts[1].ID); len(h) != 3 {
		t.Errorf("history of a kept target: %d runs, want 3", len(h))
	}
}
