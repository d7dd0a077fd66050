package main

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/flowprobe/flowprobe/checks"
)

// What `flowprobe listen` keeps and logs is bounded, whatever arrives: UDP
// sources are trivially spoofed, and a flood must cost neither memory nor
// log volume in proportion to it for the whole --duration.
const (
	// maxListenSources is how many distinct (port, source address) pairs
	// are remembered with their counts; probes from further sources are
	// counted per port as "other".
	maxListenSources = 1024
	// logPerSource is how many probes of one remembered source are logged
	// one by one; the rest go into the periodic summary.
	logPerSource = 3
	// listenLogEvery is the period of the summary of probes not logged.
	listenLogEvery = 10 * time.Second
	// summarySources is how many sources the final summary names per port.
	summarySources = 20
)

// listenStats counts what the responder saw, per port ("tcp/7365").
type listenStats struct {
	maxSources, perSource int

	mu         sync.Mutex
	ports      map[string]*portStats
	remembered int // distinct (port, source) pairs, at most maxSources
	unlogged   int // probes not logged one by one since the last takeUnlogged
}

type portStats struct {
	probes, hellos int
	sources        map[netip.Addr]int // probes per remembered source
	other          int                // probes from sources not remembered
}

func newListenStats() *listenStats {
	return &listenStats{maxSources: maxListenSources, perSource: logPerSource, ports: map[string]*portStats{}}
}

// add counts p under port key k and reports whether it is to be logged one
// by one: the first perSource probes of each remembered source are.
func (s *listenStats) add(k string, p checks.ResponderProbe) (logIt bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := s.ports[k]
	if ps == nil {
		ps = &portStats{sources: map[netip.Addr]int{}}
		s.ports[k] = ps
	}
	ps.probes++
	if p.Hello {
		ps.hellos++
	}
	a := p.Remote.Addr()
	n, known := ps.sources[a]
	switch {
	case known:
		ps.sources[a] = n + 1
	case s.remembered < s.maxSources:
		s.remembered++
		ps.sources[a] = 1
	default:
		ps.other++
		s.unlogged++
		return false
	}
	if n >= s.perSource {
		s.unlogged++
		return false
	}
	return true
}

// takeUnlogged returns how many probes were not logged one by one since the
// last call, and the sources remembered so far.
func (s *listenStats) takeUnlogged() (probes, sources int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	probes, s.unlogged = s.unlogged, 0
	return probes, s.remembered
}

// seen renders what port k saw for the final summary.
func (s *listenStats) seen(k string) (text string, probes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := s.ports[k]
	if ps == nil || ps.probes == 0 {
		return "no probe", 0
	}
	srcs := make([]netip.Addr, 0, len(ps.sources))
	for a := range ps.sources {
		srcs = append(srcs, a)
	}
	slices.SortFunc(srcs, netip.Addr.Compare)
	names := make([]string, 0, min(len(srcs), summarySources))
	for _, a := range srcs[:min(len(srcs), summarySources)] {
		names = append(names, a.String())
	}
	text = fmt.Sprintf("%d probes (%d from flowprobe) from %s", ps.probes, ps.hellos, strings.Join(names, ", "))
	if more := len(srcs) - len(names); more > 0 {
		text += fmt.Sprintf(" and %d more sources", more)
	}
	if ps.other > 0 {
		text += fmt.Sprintf("; %d probes from sources beyond the first %d not told apart", ps.other, s.maxSources)
	}
	return text, ps.probes
}
