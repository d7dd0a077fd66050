package checks

import (
	"context"
	"errors"

	"github.com/flowprobe/flowprobe/probe"
)

// SSHOptions are the options of the ssh check. Not implemented yet.
type SSHOptions struct{}

func newSSHOptions() any { return &SSHOptions{} }

func checkSSH(ctx context.Context, t probe.Target) probe.Result {
	var r probe.Result
	return finish(&r, errors.New("ssh check: not implemented yet"))
}
