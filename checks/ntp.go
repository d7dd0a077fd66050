package checks

import (
	"context"
	"errors"

	"github.com/flowprobe/flowprobe/probe"
)

// NTPOptions are the options of the ntp check. Not implemented yet.
type NTPOptions struct{}

func newNTPOptions() any { return &NTPOptions{} }

func checkNTP(ctx context.Context, t probe.Target) probe.Result {
	var r probe.Result
	return finish(&r, errors.New("ntp check: not implemented yet"))
}
