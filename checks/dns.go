package checks

import (
	"context"
	"errors"

	"github.com/flowprobe/flowprobe/probe"
)

// DNSOptions are the options of the dns check. Not implemented yet.
type DNSOptions struct{}

func newDNSOptions() any { return &DNSOptions{} }

func checkDNS(ctx context.Context, t probe.Target) probe.Result {
	var r probe.Result
	return finish(&r, errors.New("dns check: not implemented yet"))
}
