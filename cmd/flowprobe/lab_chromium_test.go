//go:build lab

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/flowprobe/flowprobe/deploy/testlab"
	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/probe/report"
)

// The status page as users see it: headless Chromium renders a flowprobe
// serving the lab site, and these helpers read what it shows.

// chromium runs headless Chromium with args and returns its standard
// output, a NUL byte, and its standard error (its log). Its profile, cache
// and home are in a temp dir; it resolves no host name, so it can only
// reach the 127.0.0.1 URLs it is given.
func chromium(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium not found: deploy/testlab/lab.sh install provides it (Debian package chromium)")
	}
	home := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), serveLabWait)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-default-apps", "--disable-extensions", "--no-default-browser-check",
		"--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
		"--user-data-dir=" + filepath.Join(home, "profile"),
		"--enable-logging=stderr", "--v=0", "--hide-scrollbars",
	}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+home, "XDG_CACHE_HOME="+home)
	// Chromium forks helpers: end the whole process group on a timeout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return stdout.String() + "\x00" + stderr.String()
}

// consoleMessages picks the page's console messages (console.*, uncaught
// exceptions, failed loads) out of Chromium's log.
func consoleMessages(log string) []string {
	var out []string
	for line := range strings.SplitSeq(log, "\n") {
		if strings.Contains(line, ":CONSOLE") {
			out = append(out, line)
		}
	}
	return out
}

// statusRow is one row of the status page's flow matrix.
type statusRow struct {
	state, flow, target, check, outcome, err, hint string
}

// statusRows reads the flow matrix out of a rendered DOM, by the heading of
// each source → destination table.
func statusRows(t *testing.T, dom string) (title string, rows map[string]statusRow, pairs []string) {
	t.Helper()
	title, rows, pairs, _ = statusPageDOM(t, dom)
	return title, rows, pairs
}

// statusPageDOM reads a rendered status page: its title, the flow matrix,
// the matrix headings, and the texts of the site name and the banner
// ("site" and "banner"; "" when absent).
func statusPageDOM(t *testing.T, dom string) (title string, rows map[string]statusRow, pairs []string, parts map[string]string) {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(dom))
	if err != nil {
		t.Fatalf("parse DOM: %v", err)
	}
	rows = map[string]statusRow{}
	parts = map[string]string{}
	var text func(*html.Node) string
	text = func(n *html.Node) string {
		if n.Type == html.TextNode {
			return n.Data
		}
		var b strings.Builder
		for c := range n.ChildNodes() {
			b.WriteString(text(c))
		}
		return b.String()
	}
	attr := func(n *html.Node, key string) string {
		for _, a := range n.Attr {
			if a.Key == key {
				return a.Val
			}
		}
		return ""
	}
	for n := range doc.Descendants() {
		if n.Type != html.ElementNode {
			continue
		}
		switch n.Data {
		case "title":
			// The document's own title, not the <title> of an SVG edge.
			if n.Parent != nil && n.Parent.Data == "head" {
				title = text(n)
			}
		case "div":
			switch attr(n, "class") {
			case "site":
				parts["site"] = text(n)
			case "banner":
				parts["banner"] = text(n)
			}
		case "h3":
			pairs = append(pairs, text(n))
		case "tr":
			if attr(n, "class") == "" {
				continue // the head
			}
			r := statusRow{state: attr(n, "class")}
			for td := range n.ChildNodes() {
				if td.Type != html.ElementNode || td.Data != "td" {
					continue
				}
				switch attr(td, "data-label") {
				case "":
					if s := strings.TrimSpace(text(td)); s != r.state {
						t.Errorf("row of state %s shows the badge %q", r.state, s)
					}
				case "Flow":
					r.flow = strings.TrimSpace(text(td))
				case "Target":
					r.target = text(td)
				case "Check":
					r.check = text(td)
				case "Outcome":
					r.outcome = strings.TrimSpace(text(td))
				case "Error":
					r.err = text(td)
				case "Hint":
					r.hint = text(td)
				}
			}
			rows[r.flow] = r
		}
	}
	return title, rows, pairs, parts
}

// TestLabStatusPageInChromium renders the status page of a flowprobe
// running the lab site in headless Chromium: the flow matrix shows each
// flow's state, outcome and, for a failing flow, the hint the JSON API
// gives; the header names the site; a failed reload shows its errors in a
// banner until a reload succeeds; the page logs nothing to the console, and it
// keeps screenshots at desktop and phone size (FLOWPROBE_UPDATE_SCREENSHOTS=1
// copies them to docs/images/).
func TestLabStatusPageInChromium(t *testing.T) {
	testlab.Require(t)
	testlab.Firewall(t, "tcp", testlab.HTTPPort, testlab.Drop)

	// The console detector sees what a broken page logs.
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!DOCTYPE html><title>x</title><script>console.error("detector-check"); missingFunction();</script>`)
	}))
	defer broken.Close()
	if msgs := consoleMessages(chromium(t, "--dump-dom", broken.URL+"/")); len(msgs) != 2 ||
		!strings.Contains(msgs[0], `"detector-check"`) || !strings.Contains(msgs[1], "missingFunction is not defined") {
		t.Fatalf("Chromium's log of a page with a console error and an exception: %q", msgs)
	}

	config, password := writeServeLabSite(t)
	base, logs := startLabServe(t, config)
	want := serveLabOutcomes()
	apiHints := map[string]string{}
	poll(t, serveLabWait, "every flow has its expected outcome", func() (bool, string) {
		resp, err := labHTTP.Get(base + "/api/v1/results")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		var rs []report.Result
		if err := json.NewDecoder(resp.Body).Decode(&rs); err != nil {
			return false, err.Error()
		}
		got := map[string]string{}
		for _, r := range rs {
			got[r.Flow] = r.Outcome.String()
			apiHints[r.Flow] = r.Hint
		}
		return maps.Equal(got, want), fmt.Sprint(got, "\n", logs)
	})

	out := chromium(t, "--dump-dom", base+"/")
	dom, log, _ := strings.Cut(out, "\x00")
	if msgs := consoleMessages(log); len(msgs) != 0 {
		t.Errorf("the status page logs to the console:\n%s", strings.Join(msgs, "\n"))
	}
	if strings.Contains(dom, password) {
		t.Error("the status page shows the LDAP password")
	}
	title, rows, pairs, parts := statusPageDOM(t, dom)
	if parts["site"] != "site lab" || parts["banner"] != "" {
		t.Errorf("header site %q, banner %q; want \"site lab\" and no banner", parts["site"], parts["banner"])
	}
	down := 0
	for _, f := range serveLabFlows {
		if f.outcome != probe.OutcomeOK {
			down++
		}
	}
	if wantTitle := fmt.Sprintf("flowprobe lab: %d down", down); title != wantTitle {
		t.Errorf("title %q, want %q", title, wantTitle)
	}
	wantPairs := []string{}
	for _, f := range serveLabFlows {
		p := serveLabSelf + " → " + f.destination
		if !slices.Contains(wantPairs, p) {
			wantPairs = append(wantPairs, p)
		}
	}
	slices.Sort(wantPairs)
	slices.Sort(pairs)
	if !slices.Equal(pairs, wantPairs) {
		t.Errorf("matrix headings %q, want %q", pairs, wantPairs)
	}
	if len(rows) != len(serveLabFlows) {
		t.Errorf("matrix has %d rows, want %d: %v", len(rows), len(serveLabFlows), rows)
	}
	for _, f := range serveLabFlows {
		r, ok := rows[f.id]
		state := "down"
		if f.outcome == probe.OutcomeOK {
			state = "up"
		}
		target := testlab.ServerAddr
		if f.port != 0 {
			target = testlab.Addr(f.port)
		}
		if wantRow := (statusRow{state: state, flow: f.id, target: target + "/" + f.protocol, check: f.check, outcome: f.outcome.String(), err: r.err, hint: r.hint}); !ok || r != wantRow {
			t.Errorf("matrix row %s = %+v, want %+v", f.id, r, wantRow)
		}
		if (f.outcome == probe.OutcomeOK) != (r.err == "") {
			t.Errorf("matrix row %s shows the error %q", f.id, r.err)
		}
		// A failing flow shows the hint the JSON API gives it (the
		// outcomes are stable, so the runs of page and API agree).
		wantHint := ""
		if f.outcome != probe.OutcomeOK {
			wantHint = apiHints[f.id]
		}
		if r.hint != wantHint || (f.outcome != probe.OutcomeOK && r.hint == "") {
			t.Errorf("matrix row %s shows the hint %q, want %q (not empty for a failing flow)", f.id, r.hint, wantHint)
		}
	}

	labReloadBanner(t, base, config, password)

	// Screenshots at desktop and phone size.
	shots := t.TempDir()
	for _, shot := range []struct {
		name          string
		width, height int
		scale         int
	}{
		{"status-page.png", 1280, 900, 1},
		{"status-page-phone.png", 390, 844, 2},
	} {
		file := filepath.Join(shots, shot.name)
		log := chromium(t, fmt.Sprintf("--window-size=%d,%d", shot.width, shot.height),
			fmt.Sprintf("--force-device-scale-factor=%d", shot.scale), "--screenshot="+file, base+"/")
		if msgs := consoleMessages(log); len(msgs) != 0 {
			t.Errorf("%s: the status page logs to the console:\n%s", shot.name, strings.Join(msgs, "\n"))
		}
		f, err := os.Open(file)
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		cfg, err := png.DecodeConfig(f)
		f.Close()
		if err != nil || cfg.Width != shot.width*shot.scale || cfg.Height != shot.height*shot.scale {
			t.Errorf("%s: %dx%d (%v), want %dx%d", shot.name, cfg.Width, cfg.Height, err, shot.width*shot.scale, shot.height*shot.scale)
		}
		if os.Getenv("FLOWPROBE_UPDATE_SCREENSHOTS") == "1" {
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join("../../docs/images", shot.name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// labReloadBanner breaks the config of the flowprobe at base, reloads it,
// and sees the banner in Chromium with the error and without the LDAP
// password; then it restores the config, reloads again and sees the banner
// gone.
func labReloadBanner(t *testing.T, base, config, password string) {
	t.Helper()
	good, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	reload := func(want int) {
		t.Helper()
		resp, err := labHTTP.Post(base+"/-/reload", "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("POST /-/reload = %d %s, want %d", resp.StatusCode, body, want)
		}
	}
	banner := func() string {
		t.Helper()
		dom, log, _ := strings.Cut(chromium(t, "--dump-dom", base+"/"), "\x00")
		if msgs := consoleMessages(log); len(msgs) != 0 {
			t.Errorf("the status page logs to the console:\n%s", strings.Join(msgs, "\n"))
		}
		if strings.Contains(dom, password) {
			t.Error("the status page shows the LDAP password")
		}
		_, rows, _, parts := statusPageDOM(t, dom)
		if len(rows) != len(serveLabFlows) {
			t.Errorf("with a reload banner the matrix has %d rows, want %d", len(rows), len(serveLabFlows))
		}
		return parts["banner"]
	}

	if err := os.WriteFile(config, append([]byte("prodcts: <b>typo</b>\n"), good...), 0o600); err != nil {
		t.Fatal(err)
	}
	reload(http.StatusInternalServerError)
	if b := banner(); !strings.Contains(b, "The last configuration reload failed") ||
		!strings.Contains(b, `unknown key "prodcts"`) {
		t.Errorf("banner %q: want the failed reload and its error", b)
	}
	if err := os.WriteFile(config, good, 0o600); err != nil {
		t.Fatal(err)
	}
	reload(http.StatusOK)
	if b := banner(); b != "" {
		t.Errorf("banner %q after a successful reload", b)
	}
}
