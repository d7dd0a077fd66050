package checks

import (
	"context"
	"errors"

	"github.com/flowprobe/flowprobe/probe"
)

// SNMPOptions are the options of the snmp check. Not implemented yet.
type SNMPOptions struct{}

func newSNMPOptions() any { return &SNMPOptions{} }

func checkSNMP(ctx context.Context, t probe.Target) probe.Result {
	var r probe.Result
	return finish(&r, errors.New("snmp check: not implemented yet"))
}
