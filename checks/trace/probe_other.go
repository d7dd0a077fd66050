//go:build !linux

package trace

import (
	"context"

	"github.com/flowprobe/flowprobe/probe"
)

func (tr *Tracer) newProber(Request, probe.Protocol, int) (prober, error) { return nil, ErrUnsupported }

func (tr *Tracer) probeMTU(context.Context, Request, *Report) (*MTUResult, error) {
	return nil, ErrUnsupported
}
