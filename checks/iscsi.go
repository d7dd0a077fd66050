package checks

import (
	"context"
	"errors"

	"github.com/flowprobe/flowprobe/probe"
)

// ISCSIOptions are the options of the iscsi check. Not implemented yet.
type ISCSIOptions struct{}

func newISCSIOptions() any { return &ISCSIOptions{} }

func checkISCSI(ctx context.Context, t probe.Target) probe.Result {
	var r probe.Result
	return finish(&r, errors.New("iscsi check: not implemented yet"))
}
