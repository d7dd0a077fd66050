package checks

// Secrets: the one type every credential of a check is kept in. A Secret
// names where the credential is kept (a file or an environment variable)
// and is read only when a check runs; planning never needs it, and
// `flowprobe validate` audits it (Audit).

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
)

// errSecret marks a secret that could not be read when a check ran: the
// check is a local_error, since this machine, not the network, failed.
var errSecret = errors.New("secret unreadable")

// secretError is an unusable secret: its text is the cause's, and it is
// errSecret for errors.Is.
type secretError struct{ err error }

func (e secretError) Error() string        { return e.err.Error() }
func (e secretError) Unwrap() error        { return e.err }
func (e secretError) Is(target error) bool { return target == errSecret }

// Secret is a credential named by its source: a file or an environment
// variable. It holds the source, never the value. Reveal reads the value
// when a check needs it; every way of printing a Secret (fmt's %v, %+v and
// %#v, JSON, YAML, text and slog) shows the source only, as in
// "<secret from file /run/secrets/ad>".
//
// A Secret is comparable; the zero Secret is no secret.
type Secret struct {
	// option is the option that names the source, e.g. password_file; it
	// names the secret in errors.
	option string
	file   string
	env    string
	// minLen is the shortest value the secret may have (0: any but empty).
	minLen int
}

// newSecret returns the secret of option what (e.g. "password"), given by
// its what_file or what_env option; the zero Secret when neither is set.
// Setting both is an error.
func newSecret(what, file, env string) (Secret, error) {
	switch {
	case file != "" && env != "":
		return Secret{}, fmt.Errorf("%s: set %s_file or %s_env, not both", what, what, what)
	case file != "":
		return Secret{option: what + "_file", file: file}, nil
	case env != "":
		return Secret{option: what + "_env", env: env}, nil
	}
	return Secret{}, nil
}

// requireSecret is the error of a secret that must be given and is not.
func requireSecret(what string) error {
	return fmt.Errorf("%s: not set: give %s_file or %s_env", what, what, what)
}

// SecretFile is the secret kept in the file at path (for options built
// in code; option names it in errors).
func SecretFile(option, path string) Secret { return Secret{option: option, file: path} }

// SecretEnv is the secret kept in the environment variable name.
func SecretEnv(option, name string) Secret { return Secret{option: option, env: name} }

// IsZero reports whether s names no source.
func (s Secret) IsZero() bool { return s.file == "" && s.env == "" }

// atLeast returns s requiring a value of at least n characters.
func (s Secret) atLeast(n int) Secret { s.minLen = n; return s }

// Reveal reads the secret's value: the file's content without trailing
// newlines, or the environment variable's value. Its errors (errSecret,
// hence local_error) name the option and the source, never the value.
func (s Secret) Reveal() (string, error) {
	var v string
	switch {
	case s.file != "":
		b, err := os.ReadFile(s.file)
		if err != nil {
			return "", secretError{fmt.Errorf("%s: %w", s.option, err)}
		}
		v = strings.TrimRight(string(b), "\r\n")
	case s.env != "":
		e, ok := os.LookupEnv(s.env)
		if !ok {
			return "", secretError{fmt.Errorf("%s: environment variable %s is not set", s.option, s.env)}
		}
		v = e
	default:
		return "", secretError{errors.New("secret: no file or environment variable given")}
	}
	switch {
	case v == "":
		return "", secretError{fmt.Errorf("%s: %s is empty", s.option, s.source())}
	case len(v) < s.minLen:
		return "", secretError{fmt.Errorf("%s: %s is shorter than %d characters", s.option, s.source(), s.minLen)}
	}
	return v, nil
}

// Audit checks, without using it, that the secret can be read here: it
// returns an error when it cannot (an unreadable, empty or too short file
// or variable) and a warning when the file may be read by its group or by
// others, or when the environment variable is not set in this process
// (`flowprobe validate` may run where the daemon's environment is not).
func (s Secret) Audit() (warning string, err error) {
	if s.env != "" {
		if _, ok := os.LookupEnv(s.env); !ok {
			return fmt.Sprintf("%s: environment variable %s is not set here: checks that need it end in local_error unless it is set where flowprobe runs", s.option, s.env), nil
		}
	}
	if _, err := s.Reveal(); err != nil {
		return "", err
	}
	if s.file == "" {
		return "", nil
	}
	fi, err := os.Stat(s.file)
	if err != nil {
		return "", fmt.Errorf("%s: %w", s.option, err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Sprintf("%s: %s is open to its group or others (mode %04o): make it readable by flowprobe's user only (chmod 600)", s.option, s.file, uint32(perm)), nil
	}
	return "", nil
}

// source says where the secret is kept.
func (s Secret) source() string {
	switch {
	case s.file != "":
		return "file " + s.file
	case s.env != "":
		return "environment variable " + s.env
	}
	return "nowhere"
}

// String shows the source, never the value.
func (s Secret) String() string {
	if s.IsZero() {
		return "<no secret>"
	}
	return "<secret from " + s.source() + ">"
}

// GoString shows the source for %#v.
func (s Secret) GoString() string { return s.String() }

// Format prints the source for every verb and flag of fmt, so that %x or
// %q cannot bypass String.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// MarshalText shows the source (encoding.TextMarshaler).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// MarshalJSON shows the source as a JSON string.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalYAML shows the source.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// LogValue shows the source in log/slog records.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// secretHolder is implemented by the options of kinds that keep secrets.
type secretHolder interface {
	// secrets lists the secrets the options name.
	secrets() []Secret
}

// Secrets lists the secrets that decoded options name (none for a kind
// without credentials).
func Secrets(options any) []Secret {
	if h, ok := options.(secretHolder); ok {
		return h.secrets()
	}
	return nil
}

// SecretAudit collects what Binder.Decode finds when it audits secrets:
// each secret is audited once, and each warning is kept once.
type SecretAudit struct {
	// Warnings are the audit's warnings, in the order found.
	Warnings []string

	done map[Secret]error
}

// audit audits the secrets of options of check kind kind; it returns
// their errors, joined.
func (a *SecretAudit) audit(kind string, options any) error {
	if a.done == nil {
		a.done = map[Secret]error{}
	}
	var errs []error
	for _, s := range Secrets(options) {
		err, seen := a.done[s]
		if !seen {
			var warn string
			warn, err = s.Audit()
			a.done[s] = err
			if warn != "" {
				a.Warnings = append(a.Warnings, kind+" options: "+warn)
			}
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
