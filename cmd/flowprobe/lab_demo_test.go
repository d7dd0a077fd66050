//go:build lab

package main

import (
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowprobe/flowprobe/exporter"
)

// TestLabDemoPageInChromium renders the status page of `serve --demo` in
// headless Chromium at desktop and phone size: the flow map has one edge
// per flow, every row has its history strip, the filters narrow the rows,
// and the page logs nothing to the console. It needs Chromium, not the
// lab's servers: the demo runs on loopback.
func TestLabDemoPageInChromium(t *testing.T) {
	s := startServe(t, &serveOptions{demo: true}, nil)
	done := make(chan struct{})
	defer close(done)
	go func() { // the scheduler must never wait for this test
		for {
			select {
			case <-s.recorded:
			case <-done:
				return
			}
		}
	}()
	var results []exporter.Result
	poll(t, serveLabWait, "every demo target ran twice", func() (bool, string) {
		resp, err := labHTTP.Get(s.base + "/api/v1/results")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		results = nil
		if err := json.NewDecoder(resp.Body).Decode(&results); err != nil {
			return false, err.Error()
		}
		ready, _ := labHTTP.Get(s.base + "/-/ready")
		if ready == nil || ready.StatusCode != 200 {
			return false, "not ready"
		}
		ready.Body.Close()
		for _, r := range results {
			if len(r.History) < 2 {
				return false, fmt.Sprintf("%s has %d runs", r.Target, len(r.History))
			}
		}
		return len(results) > 0, fmt.Sprint(len(results), " results")
	})
	flows, failing := map[string]bool{}, 0
	for _, r := range results {
		flows[r.Flow] = true
		if !r.Up {
			failing++
		}
	}

	for _, size := range []struct {
		name          string
		width, height int
	}{{"desktop", 1280, 800}, {"phone", 390, 844}} {
		t.Run(size.name, func(t *testing.T) {
			window := fmt.Sprintf("--window-size=%d,%d", size.width, size.height)
			out := chromium(t, window, "--dump-dom", s.base+"/")
			dom, log, _ := strings.Cut(out, "\x00")
			if msgs := consoleMessages(log); len(msgs) != 0 {
				t.Errorf("the demo page logs to the console:\n%s", strings.Join(msgs, "\n"))
			}
			_, rows, _ := statusRows(t, dom)
			if len(rows) != len(flows) { // rows are keyed by flow
				t.Errorf("the table shows %d flows, want %d", len(rows), len(flows))
			}
			for _, want := range []string{`class="flowmap"`, `<svg viewBox="0 0 520 `, `class="hist"`, `id="filters"`, "site <strong>demo</strong>"} {
				if !strings.Contains(dom, want) {
					t.Errorf("the demo page lacks %q", want)
				}
			}
			if n := strings.Count(dom, `class="edge `); n != len(flows) {
				t.Errorf("the flow map has %d edges, want one per flow (%d)", n, len(flows))
			}
			if n, want := strings.Count(dom, `class="hist"`), len(results); n != want {
				t.Errorf("%d history strips, want one per target (%d)", n, want)
			}

			out = chromium(t, window, "--dump-dom", s.base+"/?failing=1")
			dom, log, _ = strings.Cut(out, "\x00")
			if msgs := consoleMessages(log); len(msgs) != 0 {
				t.Errorf("the filtered demo page logs to the console:\n%s", strings.Join(msgs, "\n"))
			}
			if n := strings.Count(dom, `<tr class="down"`); n != failing || strings.Contains(dom, `<tr class="up"`) {
				t.Errorf("failing=1 shows %d failing rows (want %d) or passing ones", n, failing)
			}

			file := filepath.Join(t.TempDir(), size.name+".png")
			if msgs := consoleMessages(chromium(t, window, "--screenshot="+file, s.base+"/")); len(msgs) != 0 {
				t.Errorf("screenshot: the page logs to the console:\n%s", strings.Join(msgs, "\n"))
			}
			f, err := os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if cfg, err := png.DecodeConfig(f); err != nil || cfg.Width != size.width {
				t.Errorf("screenshot %dx%d (%v), want width %d", cfg.Width, cfg.Height, err, size.width)
			}
		})
	}
}
