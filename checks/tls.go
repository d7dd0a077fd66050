package checks

import (
	"context"
	"errors"

	"github.com/flowprobe/flowprobe/probe"
)

// TLSCheckOptions are the options of the tls check. Not implemented yet.
type TLSCheckOptions struct{}

func newTLSCheckOptions() any { return &TLSCheckOptions{} }

func checkTLS(ctx context.Context, t probe.Target) probe.Result {
	var r probe.Result
	return finish(&r, errors.New("tls check: not implemented yet"))
}
