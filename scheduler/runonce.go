package scheduler

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/flowprobe/flowprobe/probe"
)

// RunOnce runs every target once, in parallel under the scheduler's caps,
// and returns the results in the order of targets. Each check gets its
// target's timeout, so when no cap binds the whole set takes about one
// timeout even if every packet is dropped. progress, when not nil, is
// called after each check with the target's index; calls never overlap, so
// it may print without locking. If ctx ends first, the targets not started
// yet report OutcomeTimeout with an error saying they did not run. When ctx
// is cancelled (Ctrl-C), the runs it cut short and the targets not started
// yet are interrupted (probe.Result.Interrupted, an error wrapping
// probe.ErrInterrupted): they say nothing about the flows, and the CLI
// exits with 130 rather than report them.
func (s *Scheduler) RunOnce(ctx context.Context, targets []probe.Target, progress func(i int, r probe.Result)) []probe.Result {
	results := make([]probe.Result, len(targets))
	if len(targets) == 0 {
		return results
	}
	set := s.settings.Load()
	order, hostCounts := interleaveHosts(targets)
	workers := runOnceWorkers(len(targets), hostCounts, set.cfg.MaxInFlight, set.cfg.MaxInFlightPerHost)
	var (
		next       atomic.Int64
		progressMu sync.Mutex
		wg         sync.WaitGroup
	)
	wg.Add(workers)
	for range workers {
		go func() {
			defer wg.Done()
			for {
				k := int(next.Add(1) - 1)
				if k >= len(order) {
					return
				}
				i := order[k]
				r := s.runOne(ctx, set, targets[i])
				results[i] = r
				if progress != nil {
					progressMu.Lock()
					progress(i, r)
					progressMu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return results
}

// runOne runs one target under the caps of set.
func (s *Scheduler) runOne(ctx context.Context, set *settings, t probe.Target) probe.Result {
	sl := slots{host: set.lim.host(t.Host), global: set.lim.global}
	var wait func()
	if s.onWait != nil {
		wait = func() { s.onWait(t) }
	}
	if err := ctx.Err(); err != nil {
		return notRun(err)
	}
	if err := sl.acquire(ctx, wait); err != nil {
		return notRun(err)
	}
	defer sl.release()
	s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	return probe.Run(ctx, s.checker, t)
}

func notRun(err error) probe.Result {
	if errors.Is(err, context.Canceled) {
		return probe.Result{Outcome: probe.OutcomeTimeout, Interrupted: true,
			Err: fmt.Errorf("check not started: %w: %w", probe.ErrInterrupted, err)}
	}
	return probe.Result{Outcome: probe.OutcomeTimeout, Err: fmt.Errorf("check not started: %w", err)}
}

// runOnceWorkers is how many workers RunOnce starts: no more than the
// checks that may run at once, under the global cap and, per host, under
// the per-host cap (hostCounts holds the targets of each host). More
// workers would only wait on the host gates and take turns handing slots
// to each other, which costs a goroutine wakeup per check.
func runOnceWorkers(targets int, hostCounts []int, maxInFlight, perHost int) int {
	workers := targets
	if perHost > 0 {
		workers = 0
		for _, n := range hostCounts {
			workers += min(n, perHost)
		}
	}
	if maxInFlight > 0 && maxInFlight < workers {
		workers = maxInFlight
	}
	return workers
}

// interleaveHosts returns the indices of targets ordered round-robin over
// their hosts (hosts in order of first appearance), so that a per-host cap
// on one busy host does not hold up the checks of the others, and the
// number of targets of each host.
func interleaveHosts(targets []probe.Target) (order, hostCounts []int) {
	byHost := map[string]int{} // host -> index into groups
	var groups [][]int
	for i, t := range targets {
		g, ok := byHost[t.Host]
		if !ok {
			g = len(groups)
			byHost[t.Host] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], i)
	}
	order = make([]int, 0, len(targets))
	for round := 0; len(order) < len(targets); round++ {
		for _, g := range groups {
			if round < len(g) {
				order = append(order, g[round])
			}
		}
	}
	hostCounts = make([]int, len(groups))
	for i, g := range groups {
		hostCounts[i] = len(g)
	}
	return order, hostCounts
}
