package checks

import (
	"context"
	"errors"

	"github.com/flowprobe/flowprobe/probe"
)

// TCPOptions are the options of the tcp check. Not implemented yet.
type TCPOptions struct{}

func newTCPOptions() any { return &TCPOptions{} }

func checkTCP(ctx context.Context, t probe.Target) probe.Result {
	var r probe.Result
	return finish(&r, errors.New("tcp check: not implemented yet"))
}
