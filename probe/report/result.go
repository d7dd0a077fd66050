package report

import (
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/flowprobe/flowprobe/probe"
)

// Result is the JSON form of one target's result, shared by
// `flowprobe probe`, `flowprobe check --output json` and /api/v1/results.
// Its field names are an interface other tools read: keep them stable.
type Result struct {
	Product         string             `json:"product,omitempty"`
	Flow            string             `json:"flow,omitempty"`
	Source          string             `json:"source,omitempty"`
	Destination     string             `json:"destination,omitempty"`
	Target          string             `json:"target"`
	Protocol        probe.Protocol     `json:"protocol,omitempty"`
	Port            int                `json:"port,omitempty"`
	Check           string             `json:"check"`
	Expect          probe.Expect       `json:"expect,omitempty"`
	Required        probe.Requirement  `json:"required,omitempty"`
	Outcome         probe.Outcome      `json:"outcome"`
	Success         bool               `json:"success"`
	Time            time.Time          `json:"time"`
	DurationSeconds float64            `json:"duration_seconds"`
	Phases          map[string]float64 `json:"phases"`
	Details         map[string]string  `json:"details"`
	Values          map[string]float64 `json:"values,omitempty"`
	Error           string             `json:"error"`
	// Hint is the remedy for the result from the one hint table
	// (probe.Hint): what the outcome means in the phase the run reached,
	// and what to do; "" for an allowed flow that passed.
	Hint string `json:"hint"`
	// Trace is the path trace of a failed flow, when one ran (`check
	// --trace`, or the daemon's automatic trace).
	Trace *Trace `json:"trace,omitempty"`
}

// NewResult combines a target and its result.
func NewResult(t probe.Target, r probe.Result) Result {
	rep := Result{
		Product: t.Product, Flow: t.Flow, Source: t.Source, Destination: t.Destination,
		Target: t.Address(), Protocol: t.Protocol, Port: t.Port, Check: t.Check,
		Expect: t.Expect, Required: t.Required,
		Outcome: r.Outcome, Success: r.Success, Time: r.Start,
		DurationSeconds: r.Duration.Seconds(),
		Phases:          map[string]float64{},
		Details:         r.Details,
		Values:          r.Values,
		Error:           r.Error(),
		Hint:            probe.Hint(&t, &r),
	}
	for p, d := range r.Phases {
		if d > 0 {
			rep.Phases[probe.Phase(p).String()] = d.Seconds()
		}
	}
	if rep.Details == nil {
		rep.Details = map[string]string{}
	}
	return rep
}

// WriteResultJSON writes one result as indented JSON.
func WriteResultJSON(w io.Writer, t probe.Target, r probe.Result) error {
	return writeJSON(w, NewResult(t, r))
}

// WriteResultText writes a result for a person: verdict, outcome, timing,
// details, the error and the hint (probe.Hint) when there is one.
func WriteResultText(w io.Writer, t probe.Target, r probe.Result) error {
	tw := &errWriter{w: w}
	tw.printf("%s %s %s: %s in %s", mark(r), t.Check, t.Address(), r.Outcome, fmtDuration(r.Duration))
	if t.Expect == probe.ExpectDeny {
		if r.Success {
			tw.printf(" (blocked, as expected)")
		} else {
			tw.printf(" (expected to be blocked)")
		}
	}
	tw.printf("\n")
	var phases []string
	for p, d := range r.Phases {
		if d > 0 {
			phases = append(phases, probe.Phase(p).String()+" "+fmtDuration(d))
		}
	}
	if len(phases) > 0 {
		tw.printf("  phases:  %s\n", strings.Join(phases, ", "))
	}
	for _, k := range slices.Sorted(maps.Keys(r.Details)) {
		tw.printf("  %s: %s\n", Sanitize(k), Sanitize(r.Details[k]))
	}
	for _, k := range slices.Sorted(maps.Keys(r.Values)) {
		v := r.Values[k]
		if strings.HasSuffix(k, "_timestamp_seconds") {
			tw.printf("  %s: %s\n", k, time.Unix(int64(v), 0).UTC().Format(time.RFC3339))
			continue
		}
		tw.printf("  %s: %g\n", k, v)
	}
	if r.Err != nil {
		tw.printf("  error:   %s\n", Sanitize(r.Err.Error()))
	}
	if h := probe.Hint(&t, &r); h != "" {
		tw.printf("  hint:    %s\n", h)
	}
	return tw.err
}

// fmtDuration rounds for reading: 1.234ms, 12.3ms, 1.5s.
func fmtDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}
