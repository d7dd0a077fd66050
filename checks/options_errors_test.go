package checks

import (
	"strings"
	"testing"
)

// Option errors speak of options and kinds, never of Go types, and say
// how a secret is given.
func TestOptionErrorsNameOptionsNotTypes(t *testing.T) {
	for _, c := range []struct {
		kind string
		raw  map[string]any
		want string
	}{
		{"ldap", map[string]any{"password": "x"}, `ldap options: unknown option "password" (known: `},
		{"ldap", map[string]any{"password": "x"}, `give password_file (a file holding it) or password_env (an environment variable)`},
		{"tls", map[string]any{"password": "x"}, `secrets are only given as <option>_file or <option>_env`},
		{"tcp", map[string]any{"responder": "maybe"}, `tcp options: "maybe" is not true or false`},
	} {
		_, err := Decode(c.kind, c.raw)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %v: %v, want %q", c.kind, c.raw, err, c.want)
		}
		if err != nil && (strings.Contains(err.Error(), "checks.") || strings.Contains(err.Error(), "not found in type")) {
			t.Errorf("%s %v: a Go type in %q", c.kind, c.raw, err)
		}
	}
}
