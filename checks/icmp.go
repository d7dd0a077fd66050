package checks

import (
	"context"
	"errors"

	"github.com/flowprobe/flowprobe/probe"
)

// ICMPOptions are the options of the icmp check. Not implemented yet.
type ICMPOptions struct{}

func newICMPOptions() any { return &ICMPOptions{} }

var icmpChecker probe.Checker = probe.CheckerFunc(func(ctx context.Context, t probe.Target) probe.Result {
	var r probe.Result
	return finish(&r, errors.New("icmp check: not implemented yet"))
})
