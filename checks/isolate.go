package checks

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"unicode/utf8"

	"github.com/flowprobe/flowprobe/probe"
)

// MaxErrorBytes caps the error text a Result carries. Some libraries put
// whole dumps into their errors (gosnmp turns its own panics into an 8 KiB
// stack of every goroutine); the status page, the JSON API and the logs
// need the start of it, not all of it.
const MaxErrorBytes = 512

// truncatedMark ends an error text cut at MaxErrorBytes.
const truncatedMark = "…(truncated)"

// isolate runs one check so that nothing in it can stop the daemon: a
// panic becomes a protocol_error whose reason names the panic value, and is
// logged once, at error level, with its stack. The Result's error text is
// capped at MaxErrorBytes either way.
func isolate(ctx context.Context, c probe.Checker, t probe.Target) (r probe.Result) {
	defer func() {
		if v := recover(); v != nil {
			slog.Default().Error("Check panicked", "flow", t.Flow, "target", t.Address(), "check", t.Check,
				"panic", capText(fmt.Sprint(v)), "stack", string(debug.Stack()))
			r = probe.Result{}
			reason := capText(fmt.Sprintf("check panicked: %v", v))
			r.SetDetail(probe.DetailReason, reason)
			finish(&r, Fail(probe.OutcomeProtocolError, "%s", reason))
		}
		capResult(&r)
	}()
	return c.Check(ctx, t)
}

// capResult caps the error and the reason of r at MaxErrorBytes. The
// capped error still unwraps to the original, so the outcome it was
// classified with stays explainable.
func capResult(r *probe.Result) {
	if r.Err != nil {
		if msg := r.Err.Error(); len(msg) > MaxErrorBytes {
			r.Err = &cappedError{msg: capText(msg), err: r.Err}
		}
	}
	if reason, ok := r.Details[probe.DetailReason]; ok && len(reason) > MaxErrorBytes {
		r.Details[probe.DetailReason] = capText(reason)
	}
}

// capText cuts s to at most MaxErrorBytes bytes, on a rune boundary, and
// marks the cut.
func capText(s string) string {
	if len(s) <= MaxErrorBytes {
		return s
	}
	n := MaxErrorBytes - len(truncatedMark)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + truncatedMark
}

// cappedError is an error whose text was cut at MaxErrorBytes.
type cappedError struct {
	msg string
	err error
}

func (e *cappedError) Error() string { return e.msg }
func (e *cappedError) Unwrap() error { return e.err }
