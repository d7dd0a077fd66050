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

// The status page names the site, and a failing flow's row carries its
// hint (probe.Hint); a passing one none. The JSON API has the hint too.
func TestStatusPageShowsSiteAndHints(t *testing.T) {
	e := New(Options{})
	if err := e.SetConstLabels("berlin-dc2", nil); err != nil {
		t.Fatal(err)
	}
	icmp, ldap := icmpTarget(), ldapTarget()
	e.Store().SetTargets([]probe.Target{ldap, icmp})
	hung := probe.Result{Outcome: probe.OutcomeServiceTimeout, Connected: true, Start: start, Err: errors.New("read tcp: i/o timeout")}
	e.Store().Record(Record{Target: ldap, Result: hung, ConsecutiveFailures: 3})
	e.Store().Record(Record{Target: icmp, Result: okResult(), Up: true})
	h := e.Handler(HandlerOptions{Gatherer: prometheus.NewRegistry(), Now: func() time.Time { return start }})

	_, page, _ := get(t, h, "GET", "/")
	hint := probe.Hint(&ldap, &hung)
	if hint == "" {
		t.Fatal("no hint for service_timeout")
	}
	for _, want := range []string{
		"<title>flowprobe berlin-dc2: 1 down</title>",
		`<div class="site">site <strong>berlin-dc2</strong></div>`,
		`<td data-label="Hint" class="hint">` + hint + `</td>`,
		`<td data-label="Hint" class="hint"></td>`, // the passing icmp flow
	} {
		if !strings.Contains(page, want) {
			t.Errorf("status page lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, `class="banner"`) {
		t.Error("a banner without a failed reload")
	}

	_, body, _ := get(t, h, "GET", "/api/v1/results")
	var got []map[string]any
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	hints := map[string]any{}
	for _, r := range got {
		hints[r["flow"].(string)] = r["hint"]
	}
	if hints["ldap"] != hint || hints["ping"] != "" {
		t.Errorf("API hints %v, want %q for ldap and \"\" for ping", hints, hint)
	}
}

// A failed reload shows a banner with its errors, escaped and made
// printable, until a reload succeeds.
func TestStatusPageReloadBanner(t *testing.T) {
	e := New(Options{})
	h := e.Handler(HandlerOptions{Gatherer: prometheus.NewRegistry(), Now: func() time.Time { return start.Add(90 * time.Second) }})
	e.SetReloadStatus(true, start)
	bad := errors.Join(
		errors.New(`site.yml:3: unknown key "prodcts"`),
		errors.New("site.yml:9: flow <script>alert(1)</script>: bad port \x1b[2J"),
	)
	e.SetReloadStatus(false, start, bad)
	_, page, _ := get(t, h, "GET", "/")
	for _, want := range []string{
		`<div class="banner" role="alert">`,
		"The last configuration reload failed (1m ago): the running configuration stays until a reload succeeds.",
		`<li>site.yml:3: unknown key &#34;prodcts&#34;</li>`,
		`<li>site.yml:9: flow &lt;script&gt;alert(1)&lt;/script&gt;: bad port \x1b[2J</li>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("status page lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "<script>alert") || strings.Contains(page, "\x1b") {
		t.Error("the reload error reaches the page raw")
	}

	// A second failure replaces the errors; a success clears the banner.
	e.SetReloadStatus(false, start, errors.New("site.yml:1: yaml: did not find expected key"))
	if _, page, _ = get(t, h, "GET", "/"); strings.Contains(page, "prodcts") || !strings.Contains(page, "did not find expected key") {
		t.Errorf("the banner does not show the last failure only:\n%s", page)
	}
	e.SetReloadStatus(true, start)
	if _, page, _ = get(t, h, "GET", "/"); strings.Contains(page, `class="banner"`) {
		t.Errorf("the banner stays after a successful reload:\n%s", page)
	}
}

// The banner keeps a bounded number of bounded lines.
func TestReloadErrorsAreBounded(t *testing.T) {
	var errs []error
	for i := range 50 {
		errs = append(errs, fmt.Errorf("site.yml:%d: %s", i, strings.Repeat("x", 1000)))
	}
	var p pageState
	p.setReload(false, start, errs)
	if len(p.errs) != reloadErrorLines+1 || p.errs[reloadErrorLines] != "… and 30 more lines (see the log)" {
		t.Fatalf("%d lines, last %q", len(p.errs), p.errs[len(p.errs)-1])
	}
	for _, l := range p.errs[:reloadErrorLines] {
		if n := len([]rune(l)); n > reloadErrorLineRune+1 {
			t.Errorf("a line of %d runes", n)
		}
	}
}
