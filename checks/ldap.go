package checks

import (
	"context"
	"errors"

	"github.com/flowprobe/flowprobe/probe"
)

// LDAPOptions are the options of the ldap check. Not implemented yet.
type LDAPOptions struct{}

func newLDAPOptions() any { return &LDAPOptions{} }

func checkLDAP(ctx context.Context, t probe.Target) probe.Result {
	var r probe.Result
	return finish(&r, errors.New("ldap check: not implemented yet"))
}
