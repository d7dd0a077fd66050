package checks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"syscall"
	"testing"

	"github.com/flowprobe/flowprobe/probe"
)

// captureDefaultLog sends slog.Default to a buffer for the test.
func captureDefaultLog(t *testing.T) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
	t.Cleanup(func() { slog.SetDefault(old) })
	return &buf
}

func TestPanickingCheckBecomesProtocolErrorAndTheNextRunGoesOn(t *testing.T) {
	logs := captureDefaultLog(t)
	target := probe.Target{Flow: "f", Host: "192.0.2.1", Port: 161, Protocol: probe.UDP, Check: "snmp"}
	boom := probe.CheckerFunc(func(context.Context, probe.Target) probe.Result {
		var m map[string]int
		m["x"] = 1 // a library bug: assignment to a nil map
		return probe.Result{}
	})
	r := probe.Run(context.Background(), probe.CheckerFunc(func(ctx context.Context, t probe.Target) probe.Result {
		return isolate(ctx, boom, t)
	}), target)
	if r.Outcome != probe.OutcomeProtocolError || r.Success {
		t.Fatalf("a panicking check: outcome %v, success %v; want protocol_error, failed", r.Outcome, r.Success)
	}
	if want := "check panicked: assignment to entry in nil map"; r.Error() != want || r.Details[probe.DetailReason] != want {
		t.Errorf("error %q, reason %q; want %q", r.Error(), r.Details[probe.DetailReason], want)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "level=ERROR") || !strings.Contains(lines[0], `msg="Check panicked"`) ||
		!strings.Contains(lines[0], "flow=f") || !strings.Contains(lines[0], "goroutine ") {
		t.Errorf("want one error line with the flow and the stack, got:\n%s", logs)
	}

	ok := probe.CheckerFunc(func(context.Context, probe.Target) probe.Result { return probe.Result{} })
	if r := isolate(context.Background(), ok, target); r.Outcome != probe.OutcomeOK || r.Err != nil {
		t.Errorf("the next run: %v %v, want ok", r.Outcome, r.Err)
	}
}

func TestPanicValueAndHugeErrorsAreCapped(t *testing.T) {
	captureDefaultLog(t)
	huge := strings.Repeat("goroutine 1 [running]:\n\tgithub.com/gosnmp/gosnmp.(*GoSNMP).send()\n", 200) // ~13 KiB
	for _, tc := range []struct {
		name    string
		checker probe.Checker
		outcome probe.Outcome
		cause   error
	}{
		{"panic with a huge value", probe.CheckerFunc(func(context.Context, probe.Target) probe.Result { panic(huge) }), probe.OutcomeProtocolError, nil},
		{"huge error", probe.CheckerFunc(func(context.Context, probe.Target) probe.Result {
			r := probe.Result{}
			return finish(&r, fmt.Errorf("snmp get: %s: %w", huge, syscall.ECONNREFUSED))
		}), probe.OutcomeRefused, syscall.ECONNREFUSED},
		{"huge reason", probe.CheckerFunc(func(context.Context, probe.Target) probe.Result {
			r := probe.Result{}
			r.SetDetail(probe.DetailReason, huge)
			return finish(&r, Fail(probe.OutcomeProtocolError, "bad answer"))
		}), probe.OutcomeProtocolError, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := isolate(context.Background(), tc.checker, probe.Target{Check: "snmp"})
			if r.Outcome != tc.outcome {
				t.Errorf("outcome %v, want %v", r.Outcome, tc.outcome)
			}
			for what, s := range map[string]string{"error": r.Error(), "reason": r.Details[probe.DetailReason]} {
				if len(s) > MaxErrorBytes {
					t.Errorf("%s is %d bytes, want at most %d", what, len(s), MaxErrorBytes)
				}
				if len(s) > 100 && !strings.HasSuffix(s, "…(truncated)") {
					t.Errorf("%s does not end with the truncation mark: %q", what, s[len(s)-40:])
				}
			}
			if tc.cause != nil && !errors.Is(r.Err, tc.cause) {
				t.Errorf("the capped error no longer wraps %v", tc.cause)
			}
		})
	}
	if short := capText("short"); short != "short" {
		t.Errorf("capText changed a short text: %q", short)
	}
	if s := capText(strings.Repeat("é", 400)); !strings.HasSuffix(s, "é…(truncated)") || len(s) > MaxErrorBytes {
		t.Errorf("capText cut inside a rune or overran: %q", s[len(s)-20:])
	}
}
