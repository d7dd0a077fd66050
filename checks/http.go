package checks

import (
	"context"
	"errors"

	"github.com/flowprobe/flowprobe/probe"
)

// HTTPOptions are the options of the http check. Not implemented yet.
type HTTPOptions struct{}

func newHTTPOptions() any { return &HTTPOptions{} }

func checkHTTP(ctx context.Context, t probe.Target) probe.Result {
	var r probe.Result
	return finish(&r, errors.New("http check: not implemented yet"))
}
