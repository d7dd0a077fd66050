package checks

// What every check does around its own protocol: look up its options, dial
// and watch the context, classify the error; and the expect option that the
// tcp, udp and ssh checks share.

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"regexp"

	"github.com/flowprobe/flowprobe/probe"
)

// runWith is the prologue and epilogue every check shares: it looks up t's
// options, runs run and classifies its error into the result's outcome.
func runWith[O any](ctx context.Context, t probe.Target, kind string, defaults func() *O, run RunFunc[O]) probe.Result {
	var r probe.Result
	o, err := targetOptions(&t, kind, defaults)
	if err != nil {
		return finish(&r, err)
	}
	return finish(&r, run(ctx, t, o, &r))
}

// connect dials the target over network at port (t.Port when 0) and makes
// blocked reads and writes return once ctx is done. Call done when
// finished: it releases that watcher and closes the connection.
func connect(ctx context.Context, t *probe.Target, network string, port int, r *probe.Result) (conn net.Conn, done func(), err error) {
	conn, err = dialPort(ctx, t, network, cmp.Or(port, t.Port), r)
	if err != nil {
		return nil, nil, err
	}
	release := stopOnDone(ctx, conn)
	return conn, func() { release(); _ = conn.Close() }, nil
}

// ExpectOption is the expect option of the tcp, udp and ssh checks: a
// regular expression that what the peer sent must match (tcp, udp: its
// first bytes, at most 4 KiB; ssh: its identification line), compiled once
// by Validate.
type ExpectOption struct {
	// Expect is the regular expression; empty expects nothing.
	Expect string `yaml:"expect"`

	expect *regexp.Regexp
}

// Validate compiles the expression.
func (e *ExpectOption) Validate() error {
	if e.Expect == "" {
		return nil
	}
	re, err := regexp.Compile(e.Expect)
	if err != nil {
		return fmt.Errorf("expect: %w", err)
	}
	e.expect = re
	return nil
}

// targetOptions returns t's options of type *T, or the kind's validated
// defaults when t carries none.
func targetOptions[T any](t *probe.Target, kind string, defaults func() *T) (*T, error) {
	if t.Options == nil {
		o := defaults()
		if v, ok := any(o).(interface{ Validate() error }); ok {
			if err := v.Validate(); err != nil {
				return nil, fmt.Errorf("%s options: %w", kind, err)
			}
		}
		return o, nil
	}
	o, ok := t.Options.(*T)
	if !ok {
		return nil, fmt.Errorf("%s check: options of type %T", kind, t.Options)
	}
	return o, nil
}
