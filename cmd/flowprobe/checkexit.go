package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/probe/catalog"
	"github.com/flowprobe/flowprobe/probe/report"
	"github.com/flowprobe/flowprobe/probe/site"
)

// How `flowprobe check` ends when not every check could give a verdict:
// interrupted by Ctrl-C (exit 130, no report claims to be complete) or
// with checks this machine could not run (exit 2 and the remedy).

// countInterrupted is the number of results that are no verdict because
// the run was cancelled: cut short, or never started.
func countInterrupted(results []probe.Result) int {
	n := 0
	for i := range results {
		if results[i].Interrupted {
			n++
		}
	}
	return n
}

// reportInterrupted ends an interrupted run: the results that finished go
// to standard error as a text report, then how many checks did not run.
// Neither standard output nor --output.file gets a report: a partial one
// there would read as a complete run to whatever consumes it.
func reportInterrupted(c *cli, cat *catalog.Catalog, plan *site.PlanResult, results []probe.Result, failOptional bool, interrupted int) int {
	done := *plan
	done.Targets = nil
	var doneResults []probe.Result
	for i, t := range plan.Targets {
		if !results[i].Interrupted {
			done.Targets = append(done.Targets, t)
			doneResults = append(doneResults, results[i])
		}
	}
	if len(done.Targets) > 0 {
		if err := report.NewCheck(cat, &done, doneResults, failOptional).WriteText(c.stderr); err != nil {
			fmt.Fprintf(c.stderr, "flowprobe check: write report: %v\n", err)
		}
	}
	fmt.Fprintf(c.stderr, "interrupted: %d of %d checks did not run; no report was written\n", interrupted, len(plan.Targets))
	return exitInterrupted
}

// localErrors says which checks this machine could not run (local_error)
// and what to do about it, each remedy once; "" when there are none. The
// remedy is the hint of an allowed flow: for a flow that must be blocked
// the hint only says that nothing is known about the block yet.
func localErrors(targets []probe.Target, results []probe.Result) string {
	var remedies []string
	count := map[string]int{}
	total := 0
	for i := range results {
		r := &results[i]
		if r.Outcome != probe.OutcomeLocalError || r.Interrupted {
			continue
		}
		t := targets[i]
		t.Expect = probe.ExpectAllow
		h := probe.Hint(&t, r)
		if count[h] == 0 {
			remedies = append(remedies, h)
		}
		count[h]++
		total++
	}
	switch len(remedies) {
	case 0:
		return ""
	case 1:
		return fmt.Sprintf("flowprobe could not run %s on this machine: %s (exit %d)\n", checksN(total), remedies[0], exitLocal)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "flowprobe could not run %s on this machine (exit %d):\n", checksN(total), exitLocal)
	for _, h := range remedies {
		fmt.Fprintf(&b, "  %s: %s\n", checksN(count[h]), h)
	}
	return b.String()
}

func checksN(n int) string {
	if n == 1 {
		return "1 check"
	}
	return fmt.Sprintf("%d checks", n)
}

// reportFile is --output.file while the run goes on. It is opened before
// the checks run, so a path that cannot be written is a usage error at
// once, but it is not truncated until the report is complete: an
// interrupted run leaves an existing file as it was and removes one it
// created.
type reportFile struct {
	f       *os.File
	path    string
	created bool
	done    bool
}

func openReportFile(path string) (*reportFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if err == nil {
		return &reportFile{f: f, path: path, created: true}, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("open report file: %w", err)
	}
	if f, err = os.OpenFile(path, os.O_WRONLY, 0); err != nil {
		return nil, fmt.Errorf("open report file: %w", err)
	}
	return &reportFile{f: f, path: path}, nil
}

// Write truncates the file at the first write, then writes.
func (r *reportFile) Write(b []byte) (int, error) {
	if !r.done {
		if err := r.f.Truncate(0); err != nil {
			return 0, fmt.Errorf("truncate report file: %w", err)
		}
		r.done = true
	}
	return r.f.Write(b)
}

// commit closes the written report.
func (r *reportFile) commit() error {
	r.done = true
	f := r.f
	r.f = nil
	if err := f.Close(); err != nil {
		return fmt.Errorf("close report file: %w", err)
	}
	return nil
}

// abandon closes the file unless committed, and removes it if this run
// created it and wrote nothing.
func (r *reportFile) abandon() {
	if r.f == nil {
		return
	}
	r.f.Close()
	if r.created && !r.done {
		os.Remove(r.path)
	}
}
