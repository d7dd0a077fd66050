package checks

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// errSecret marks a secret that could not be read. Read at run time (a
// check built in code), it makes the check a local_error: this machine,
// not the network, failed.
var errSecret = errors.New("secret unreadable")

// secretError is an unreadable secret: its text is the cause's, and it is
// errSecret for errors.Is.
type secretError struct{ err error }

func (e secretError) Error() string        { return e.err.Error() }
func (e secretError) Unwrap() error        { return e.err }
func (e secretError) Is(target error) bool { return target == errSecret }

// readSecret reads a secret from a file or an environment variable; never
// from the config itself. Trailing newlines of a file are dropped. what
// names the secret in errors; the secret's value never appears in one.
func readSecret(what, file, env string) (string, error) {
	switch {
	case file != "" && env != "":
		return "", fmt.Errorf("%s: set %s_file or %s_env, not both", what, what, what)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", secretError{fmt.Errorf("%s_file: %w", what, err)}
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	case env != "":
		v, ok := os.LookupEnv(env)
		if !ok {
			return "", secretError{fmt.Errorf("%s_env: environment variable %s is not set", what, env)}
		}
		return v, nil
	}
	return "", errors.New(what + ": not set")
}
