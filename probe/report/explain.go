package report

import "github.com/flowprobe/flowprobe/probe"

// explain is the one-line meaning of a result, with the check's own reason
// when it gave one. The reason comes from the peer's answer: writers pass
// the line through Sanitize.
func explain(t probe.Target, res probe.Result) string {
	if res.Success && t.Expect == probe.ExpectDeny {
		return "blocked, as this flow must be (" + res.Outcome.String() + ")"
	}
	if !res.Success && t.Expect == probe.ExpectDeny {
		return "this flow must be blocked, but the packets reached the host"
	}
	if res.Outcome == probe.OutcomeOK {
		if res.Details[probe.DetailResponder] == "true" {
			return "a flowprobe responder answered"
		}
		return ""
	}
	if reason := res.Details[probe.DetailReason]; reason != "" {
		return reason + " — " + res.Outcome.Meaning()
	}
	return res.Outcome.Meaning()
}
