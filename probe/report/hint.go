package report

import "github.com/flowprobe/flowprobe/probe"

// note is the line a check report shows under a result: the hint of the
// one hint table (probe.Hint), after the check's own reason when it gave
// one; for a passing result with no hint, that a flowprobe responder
// answered, if one did. The reason comes from the peer's answer: writers
// pass the line through Sanitize.
func note(t probe.Target, res probe.Result) string {
	h := probe.Hint(&t, &res)
	if h == "" {
		if res.Details[probe.DetailResponder] == "true" {
			return "a flowprobe responder answered"
		}
		return ""
	}
	if reason := res.Details[probe.DetailReason]; reason != "" && !res.Success {
		return reason + " — " + h
	}
	return h
}
