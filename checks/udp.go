package checks

import (
	"context"
	"errors"

	"github.com/flowprobe/flowprobe/probe"
)

// UDPOptions are the options of the udp check. Not implemented yet.
type UDPOptions struct{}

func newUDPOptions() any { return &UDPOptions{} }

func checkUDP(ctx context.Context, t probe.Target) probe.Result {
	var r probe.Result
	return finish(&r, errors.New("udp check: not implemented yet"))
}
