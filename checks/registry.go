package checks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/flowprobe/flowprobe/probe"
)

// Kind describes one registered check kind.
type Kind struct {
	// Name is the kind's name in configs and on the command line.
	Name string
	// Summary is one line for docs and the CLI.
	Summary string
	// Transport is the protocol the kind speaks over: tcp, udp or icmp.
	Transport probe.Protocol
	// NewOptions returns a pointer to a new options struct with its
	// defaults set; the site config and `--set` decode into it strictly.
	// If the struct has a Validate() error method, Decode calls it.
	NewOptions func() any
	// Checker runs the check; it reads its options from Target.Options.
	Checker probe.Checker
	// Values are the value metrics the kind may report.
	Values []Value
	// Hints are the catalog application hints that select the kind.
	Hints []Hint
	// DefaultPort is the service's well-known port (0 for none), used
	// when the command line names a host without a port.
	DefaultPort int
}

// Value is one numeric protocol fact a kind reports in Result.Values. It
// becomes the metric flowprobe_<Name> with the target's labels.
type Value struct {
	Name string
	Help string // the metric's HELP text
}

// Hint binds a catalog flow's application hint (Flow.App) to a kind: a
// flow with hint App over Transport (the kind's own transport when empty)
// is checked with the kind and the Options the hint implies (nil for
// none). A kind that speaks both tcp and udp through an option declares
// one hint per transport, the other one setting that option.
type Hint struct {
	App       string
	Transport probe.Protocol
	Options   map[string]any
}

// Spec declares a check kind whose options are of type O. Each kind's file
// registers its Spec with one call to register, from a package-level
// variable; config validation, dispatch, the catalog bindings, the value
// metrics and the JSON Schema (go generate ./checks) all read the registry.
type Spec[O any] struct {
	Name      string
	Transport probe.Protocol
	Summary   string
	// DefaultPort is the service's well-known port; 0 for none.
	DefaultPort int
	// Defaults returns a new options struct with the kind's defaults set.
	Defaults func() *O
	Values   []Value
	Hints    []Hint
	// Run runs the check with t's options (the validated defaults when t
	// has none), records phases, details and values in r, and returns the
	// error that decides the outcome (see Classify); nil is ok.
	Run RunFunc[O]
}

// RunFunc is the body of a check, after the common prologue.
type RunFunc[O any] func(ctx context.Context, t probe.Target, o *O, r *probe.Result) error

// registry is the one list of check kinds, filled by register.
var registry = map[string]Kind{}

// register adds the kind s declares to the registry and returns it. It
// panics on a second kind of the same name or an incomplete Spec: both are
// programming errors found by any test run.
func register[O any](s Spec[O]) Kind {
	if _, dup := registry[s.Name]; dup || s.Name == "" || s.Defaults == nil || s.Run == nil || !s.Transport.Valid() {
		panic(fmt.Sprintf("checks: bad or duplicate registration of %q", s.Name))
	}
	k := Kind{
		Name:       s.Name,
		Summary:    s.Summary,
		Transport:  s.Transport,
		NewOptions: func() any { return s.Defaults() },
		Checker: probe.CheckerFunc(func(ctx context.Context, t probe.Target) probe.Result {
			return runWith(ctx, t, s.Name, s.Defaults, s.Run)
		}),
		Values:      s.Values,
		Hints:       s.Hints,
		DefaultPort: s.DefaultPort,
	}
	registry[s.Name] = k
	return k
}

// Values returns the HELP text of every value metric of every kind, by
// value name: what the exporter needs to describe them.
func Values() map[string]string {
	help := map[string]string{}
	for _, k := range registry {
		for _, v := range k.Values {
			help[v.Name] = v.Help
		}
	}
	return help
}

// Lookup returns the check kind with the given name.
func Lookup(name string) (Kind, bool) {
	k, ok := registry[name]
	return k, ok
}

// Names lists the check kinds in alphabetical order.
func Names() []string {
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Dispatcher runs each target with the checker of its kind. It applies no
// timeout and no verdict: its caller (the scheduler, or probe.Run) owns the
// deadline and judges the result.
var Dispatcher probe.Checker = probe.CheckerFunc(dispatch)

func dispatch(ctx context.Context, t probe.Target) probe.Result {
	k, ok := registry[t.Check]
	if !ok {
		r := probe.Result{}
		return finish(&r, fmt.Errorf("unknown check kind %q", t.Check))
	}
	return isolate(ctx, denyKind(t, k).Checker, t) // a panic or a huge error stays in this run; expect: deny sends no credentials (deny.go)
}

// Check runs target t with the checker of its kind, under t's timeout, and
// judges the result against t's expectation.
func Check(ctx context.Context, t probe.Target) probe.Result {
	return probe.Run(ctx, Dispatcher, t)
}

// Decode decodes raw options for check kind name strictly (an unknown key
// is an error) into the kind's options struct and validates them. A nil or
// empty raw gives the kind's defaults.
func Decode(name string, raw map[string]any) (any, error) {
	k, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("unknown check kind %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	opts := k.NewOptions()
	if len(raw) > 0 {
		b, err := yaml.Marshal(raw)
		if err != nil {
			return nil, fmt.Errorf("%s options: %w", name, err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(opts); err != nil {
			return nil, optionsError(name, opts, err)
		}
	}
	if v, ok := opts.(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			return nil, fmt.Errorf("%s options: %w", name, err)
		}
	}
	return opts, nil
}

// ParseSet turns OPTION=VALUE pairs from the command line into raw options.
// A value is read as YAML, so numbers, booleans, durations and flow lists
// ("[A, AAAA]") work as they do in the config file.
func ParseSet(pairs []string) (map[string]any, error) {
	raw := map[string]any{}
	var errs []error
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			errs = append(errs, fmt.Errorf("--set %q: want OPTION=VALUE", p))
			continue
		}
		var val any
		if err := yaml.Unmarshal([]byte(v), &val); err != nil || val == nil {
			val = v
		} else if _, isString := val.(string); isString && !strings.HasPrefix(v, `"`) && !strings.HasPrefix(v, "'") {
			// An unquoted string stays exactly as typed: YAML would trim
			// the spaces of `expect=^220 ` and fold some characters.
			val = v
		}
		raw[k] = val
	}
	return raw, errors.Join(errs...)
}
