package probe

import "time"

// Report is the JSON form of one target's result, shared by
// `flowprobe probe`, `flowprobe check --output json` and /api/v1/results.
// Its field names are an interface other tools read: keep them stable.
type Report struct {
	Product         string             `json:"product,omitempty"`
	Flow            string             `json:"flow,omitempty"`
	Source          string             `json:"source,omitempty"`
	Destination     string             `json:"destination,omitempty"`
	Target          string             `json:"target"`
	Protocol        Protocol           `json:"protocol,omitempty"`
	Port            int                `json:"port,omitempty"`
	Check           string             `json:"check"`
	Expect          Expect             `json:"expect,omitempty"`
	Required        Requirement        `json:"required,omitempty"`
	Outcome         Outcome            `json:"outcome"`
	Success         bool               `json:"success"`
	Time            time.Time          `json:"time"`
	DurationSeconds float64            `json:"duration_seconds"`
	Phases          map[string]float64 `json:"phases"`
	Details         map[string]string  `json:"details"`
	Values          map[string]float64 `json:"values,omitempty"`
	Error           string             `json:"error"`
}

// NewReport combines a target and its result.
func NewReport(t Target, r Result) Report {
	rep := Report{
		Product: t.Product, Flow: t.Flow, Source: t.Source, Destination: t.Destination,
		Target: t.Address(), Protocol: t.Protocol, Port: t.Port, Check: t.Check,
		Expect: t.Expect, Required: t.Required,
		Outcome: r.Outcome, Success: r.Success, Time: r.Start,
		DurationSeconds: r.Duration.Seconds(),
		Phases:          map[string]float64{},
		Details:         r.Details,
		Values:          r.Values,
		Error:           r.Error(),
	}
	for p, d := range r.Phases {
		if d > 0 {
			rep.Phases[Phase(p).String()] = d.Seconds()
		}
	}
	if rep.Details == nil {
		rep.Details = map[string]string{}
	}
	return rep
}
