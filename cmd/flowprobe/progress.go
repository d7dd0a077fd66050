package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/flowprobe/flowprobe/probe"
)

// showProgress reports whether the live progress line goes to w.
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
