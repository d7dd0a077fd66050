package checks

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// This file turns the YAML decoder's errors about check options into
// messages in the config's terms: the option, the kind, the known options
// and, for secrets, the *_file and *_env forms. No Go type name reaches
// the user.

var (
	fieldNotFound = regexp.MustCompile(`^field (\S+) not found in type \S+$`)
	cannotDecode  = regexp.MustCompile("^cannot unmarshal !!(\\w+) `(.*)` into (\\S+)$")
)

// optionsError rewrites a decode error of kind's options (opts is the
// options struct the YAML was decoded into).
func optionsError(kind string, opts any, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("%s options: %w", kind, err)
	}
	known := OptionNames(opts)
	msgs := make([]string, 0, len(te.Errors))
	for _, m := range te.Errors {
		if _, rest, ok := strings.Cut(m, ": "); ok && strings.HasPrefix(m, "line ") {
			m = rest // lines of the re-marshalled options mean nothing to the user
		}
		switch {
		case fieldNotFound.MatchString(m):
			msgs = append(msgs, unknownOption(kind, fieldNotFound.FindStringSubmatch(m)[1], known))
		case cannotDecode.MatchString(m):
			g := cannotDecode.FindStringSubmatch(m)
			msgs = append(msgs, fmt.Sprintf("%s options: %q is not %s", kind, g[2], typeWords(g[3])))
		default:
			msgs = append(msgs, kind+" options: "+m)
		}
	}
	return errors.New(strings.Join(msgs, "; "))
}

// unknownOption says that kind has no option name, lists the known ones
// and, when name is a secret, how secrets are given.
func unknownOption(kind, name string, known []string) string {
	msg := fmt.Sprintf("%s options: unknown option %q (known: %s)", kind, name, strings.Join(known, ", "))
	switch {
	case slices.Contains(known, name+"_file"):
		msg += fmt.Sprintf("; a secret is never written in the config: give %s_file (a file holding it) or %s_env (an environment variable)", name, name)
	case isSecretName(name):
		msg += fmt.Sprintf("; %s takes no such secret, and secrets are only given as <option>_file or <option>_env", kind)
	}
	return msg
}

func isSecretName(name string) bool {
	for _, s := range []string{"password", "secret", "community", "token", "key"} {
		if strings.Contains(name, s) {
			return true
		}
	}
	return false
}

// typeWords names a Go type of an option in the config's terms.
func typeWords(goType string) string {
	switch {
	case goType == "time.Duration":
		return "a duration such as 5s"
	case goType == "bool":
		return "true or false"
	case goType == "string":
		return "a string"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map["):
		return "a mapping"
	case strings.HasPrefix(goType, "int") || strings.HasPrefix(goType, "uint") || strings.HasPrefix(goType, "float"):
		return "a number"
	}
	return "a value of the option's type"
}

// OptionNames returns the option names of an options struct (or a pointer
// to one), following inline structs, sorted.
func OptionNames(opts any) []string {
	var names []string
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return
		}
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("yaml")
			name, flags, _ := strings.Cut(tag, ",")
			switch {
			case name == "-":
			case strings.Contains(flags, "inline"):
				walk(f.Type)
			case f.IsExported():
				if name == "" {
					name = strings.ToLower(f.Name)
				}
				names = append(names, name)
			}
		}
	}
	walk(reflect.TypeOf(opts))
	slices.Sort(names)
	return names
}
