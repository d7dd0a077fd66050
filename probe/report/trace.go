package report

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Trace is what a path trace found, as the writers need it. The command
// line fills it from the trace engine's report, so that this package (and
// the exporter, which uses it) stays apart from the checks.
type Trace struct {
	Probe       string      `json:"probe"` // "tcp/389", "udp/123", "icmp echo"
	Destination string      `json:"destination"`
	Source      string      `json:"source,omitempty"`
	Reached     bool        `json:"reached"`
	BlockedHop  int         `json:"blocked_hop,omitempty"`
	LastHop     string      `json:"last_hop,omitempty"` // address of the last router that answered
	Verdict     string      `json:"verdict"`
	Paths       []TracePath `json:"paths"`
	MTU         string      `json:"mtu,omitempty"`
	Notes       []string    `json:"notes,omitempty"`
	// Bound is the longest the trace could have taken; Duration how long
	// it took.
	BoundSeconds    float64 `json:"bound_seconds"`
	DurationSeconds float64 `json:"duration_seconds"`
	// Time is when the trace finished, where a reader needs it (the
	// daemon's automatic trace); zero otherwise.
	Time time.Time `json:"time,omitzero"`
}

// TracePath is the hops of one kind of packet.
type TracePath struct {
	Probe  string     `json:"probe"`
	Method string     `json:"method"`
	Hops   []TraceHop `json:"hops"`
}

// TraceHop is what came back for one TTL.
type TraceHop struct {
	TTL        int     `json:"ttl"`
	Address    string  `json:"address,omitempty"`
	Reply      string  `json:"reply"`
	Code       string  `json:"code,omitempty"`
	RTTSeconds float64 `json:"rtt_seconds,omitempty"`
}

// WriteTraceJSON writes a trace as one JSON object.
func WriteTraceJSON(w io.Writer, t Trace) error { return writeJSON(w, t) }

// WriteTraceText writes a trace for a person: each path hop by hop, the
// notes, then the verdict.
func WriteTraceText(w io.Writer, t Trace) error {
	ew := &errWriter{w: w}
	writeTraceBody(ew, t, "")
	return ew.err
}

// writeTraceBody writes the trace with every line indented by indent.
func writeTraceBody(ew *errWriter, t Trace, indent string) {
	from := ""
	if t.Source != "" {
		from = " from " + t.Source
	}
	ew.printf("%strace %s to %s%s\n", indent, t.Probe, t.Destination, from)
	for _, p := range t.Paths {
		ew.printf("%s  %s (%s):\n", indent, p.Probe, p.Method)
		for _, h := range p.Hops {
			addr, what := h.Address, h.Reply
			if addr == "" {
				addr = "*"
			}
			if h.Code != "" {
				what += " " + h.Code
			}
			rtt := ""
			if h.RTTSeconds > 0 {
				rtt = latency(time.Duration(h.RTTSeconds * float64(time.Second)))
			}
			line := fmt.Sprintf("%s  %3d  %-28s %-34s %s", indent, h.TTL, Sanitize(addr), Sanitize(what), rtt)
			ew.printf("%s\n", strings.TrimRight(line, " "))
		}
	}
	for _, n := range t.Notes {
		ew.printf("%s  note: %s\n", indent, Sanitize(n))
	}
	if t.MTU != "" {
		ew.printf("%s  path MTU: %s\n", indent, t.MTU)
	}
	ew.printf("%s  verdict: %s\n", indent, t.Verdict)
	ew.printf("%s  took %s (bounded by %s)\n", indent, fmtSeconds(t.DurationSeconds), fmtSeconds(t.BoundSeconds))
}

func fmtSeconds(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Millisecond).String()
}

// writeTraces writes the traces of failed flows after a check report's
// text.
func writeTraces(w io.Writer, traces map[string]Trace, order []string) error {
	if len(order) == 0 {
		return nil
	}
	ew := &errWriter{w: w}
	ew.printf("\nWhere the failing flows stop:\n")
	for _, id := range order {
		t, ok := traces[id]
		if !ok {
			continue
		}
		ew.printf("  %s\n", id)
		writeTraceBody(ew, t, "    ")
	}
	return ew.err
}

// TraceError is a trace that could not run, in the traces section.
func TraceError(probe, destination string, err error) Trace {
	return Trace{Probe: probe, Destination: destination, Verdict: fmt.Sprintf("no trace: %v", err)}
}
