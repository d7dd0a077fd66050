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

// Kind describes one check kind.
type Kind struct {
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
}

// registry is the one list of check kinds. Config validation, dispatch,
// docs and the CLI all read it.
var registry = map[string]Kind{
	"tcp":   {Transport: probe.TCP, Summary: "TCP connect, optionally sending a string and expecting a banner", NewOptions: newTCPOptions, Checker: probe.CheckerFunc(checkTCP)},
	"tls":   {Transport: probe.TCP, Summary: "TLS handshake: version, cipher, certificate validity and expiry", NewOptions: newTLSCheckOptions, Checker: probe.CheckerFunc(checkTLS)},
	"udp":   {Transport: probe.UDP, Summary: "UDP datagram on a connected socket: answer, ICMP refusal or silence", NewOptions: newUDPOptions, Checker: probe.CheckerFunc(checkUDP)},
	"icmp":  {Transport: probe.ICMP, Summary: "ICMP echo like LifeKeeper's lkping: count, per-reply timeout, round trip and loss", NewOptions: newICMPOptions, Checker: icmpChecker},
	"dns":   {Transport: probe.UDP, Summary: "DNS query to one server over UDP or TCP: rcode and expected answers", NewOptions: newDNSOptions, Checker: probe.CheckerFunc(checkDNS)},
	"ntp":   {Transport: probe.UDP, Summary: "NTP query: offset, round trip, stratum, root distance, leap, Kiss-of-Death", NewOptions: newNTPOptions, Checker: probe.CheckerFunc(checkNTP)},
	"ldap":  {Transport: probe.TCP, Summary: "LDAP, LDAPS or StartTLS, anonymous or simple bind, optional search", NewOptions: newLDAPOptions, Checker: probe.CheckerFunc(checkLDAP)},
	"snmp":  {Transport: probe.UDP, Summary: "SNMP v1, v2c or v3 GET of sysDescr/sysUpTime or configured OIDs", NewOptions: newSNMPOptions, Checker: probe.CheckerFunc(checkSNMP)},
	"iscsi": {Transport: probe.TCP, Summary: "iSCSI login (discovery or a named target), optional CHAP and SendTargets", NewOptions: newISCSIOptions, Checker: probe.CheckerFunc(checkISCSI)},
	"http":  {Transport: probe.TCP, Summary: "HTTP or HTTPS request with expected status codes", NewOptions: newHTTPOptions, Checker: probe.CheckerFunc(checkHTTP)},
	"ssh":   {Transport: probe.TCP, Summary: "SSH identification banner", NewOptions: newSSHOptions, Checker: probe.CheckerFunc(checkSSH)},
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
	return k.Checker.Check(ctx, t)
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
			return nil, fmt.Errorf("%s options: %w", name, cleanYAMLError(err))
		}
	}
	if v, ok := opts.(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			return nil, fmt.Errorf("%s options: %w", name, err)
		}
	}
	return opts, nil
}

// cleanYAMLError drops the line numbers of the re-marshalled options, which
// mean nothing to the user; the caller names the place in its own file.
func cleanYAMLError(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs := make([]string, len(te.Errors))
		for i, m := range te.Errors {
			if _, rest, ok := strings.Cut(m, ": "); ok && strings.HasPrefix(m, "line ") {
				m = rest
			}
			msgs[i] = m
		}
		return errors.New(strings.Join(msgs, "; "))
	}
	return err
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

// targetOptions returns t's options of type *T, or the kind's validated
// defaults when t carries none.
func targetOptions[T any](t *probe.Target, kind string, defaults func() any) (*T, error) {
	if t.Options == nil {
		o := defaults().(*T)
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
