package catalog

import (
	"github.com/flowprobe/flowprobe/probe"

	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

// catalogErrors splits a LoadFS error into its messages, checking
// that each is a *Error.
func catalogErrors(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	out := make([]string, len(errs))
	for i, e := range errs {
		var ce *Error
		if !errors.As(e, &ce) {
			t.Errorf("error %q is a %T, want a *Error", e, e)
		}
		out[i] = e.Error()
	}
	return out
}

func TestLoadCatalogFSGood(t *testing.T) {
	cat, err := LoadFS(os.DirFS("testdata/good"))
	if err != nil {
		t.Fatalf("LoadFS: %v", err)
	}
	if got, want := cat.Names(), []string{"aaa-minimal", "example-app"}; !slices.Equal(got, want) {
		t.Fatalf("products %q, want %q (sorted by name)", got, want)
	}
	p, ok := cat.Product("example-app")
	if !ok {
		t.Fatal(`Product("example-app") not found`)
	}
	if _, ok := cat.Product("nope"); ok {
		t.Error(`Product("nope") found`)
	}
	if p.Title != "Example App" || len(p.Roles) != 2 || len(p.Flows) != 4 {
		t.Fatalf("product %q %q with %d roles and %d flows, want Example App with 2 and 4", p.Name, p.Title, len(p.Roles), len(p.Flows))
	}
	wantDocs := []probe.Document{
		{ID: "en", File: "example-app-ports.en.txt", Title: "Ports", Language: "en"},
		{ID: "ja", File: "example-app-ports.ja.txt", Title: "ポート", Language: "ja"},
	}
	if !slices.Equal(p.Documents, wantDocs) || !slices.Equal(p.Document, []string{"example-app-ports.en.txt", "example-app-ports.ja.txt"}) {
		t.Errorf("documents %+v / %q", p.Documents, p.Document)
	}

	https, _ := p.Flow("client-https")
	if https.Product != "example-app" || https.File != "example-app.yaml" || https.Line != 19 {
		t.Errorf("client-https located at %s %s:%d, want example-app example-app.yaml:19", https.Product, https.File, https.Line)
	}
	if got := portStrings(https.Ports); !slices.Equal(got, []string{"443", "8443"}) {
		t.Errorf("client-https ports %q, want 443 and 8443 (ints and strings both parse)", got)
	}
	if !slices.Equal(https.Revisions, []string{"en", "ja"}) {
		t.Errorf("client-https revisions %q, want every document when left out", https.Revisions)
	}
	if https.Footnotes == nil || len(https.Footnotes) != 0 {
		t.Errorf("client-https footnotes %#v, want an empty, non-nil list", https.Footnotes)
	}

	up, _ := p.Flow("updates")
	if up.Hostname != "updates.example.org" || up.Destination != "" || up.Required != probe.Conditional ||
		up.Condition != "Online updates are enabled" || !slices.Equal(up.Revisions, []string{"en"}) ||
		!slices.Equal(up.Footnotes, []string{"[1] The proxy can be configured."}) ||
		up.Note != "Only the en revision lists this row." || up.App != "http" || up.Section != "Outbound" {
		t.Errorf("updates flow %+v", *up)
	}

	data, _ := p.Flow("data")
	if got := portStrings(data.Ports); !slices.Equal(got, []string{"10001-10010", "dynamic", "ephemeral"}) || !data.Configurable {
		t.Errorf("data flow ports %q configurable %v", got, data.Configurable)
	}
	if !data.Ports[0].IsRange() || data.Ports[1].Checkable() || data.Ports[2].Kind != probe.PortEphemeral {
		t.Errorf("data flow port kinds %+v", data.Ports)
	}

	ping, _ := p.Flow("ping")
	if ping.Protocol != probe.ICMP || len(ping.Ports) != 0 {
		t.Errorf("ping flow %s %v, want icmp without ports", ping.Protocol, ping.Ports)
	}

	if got := len(cat.Flows()); got != 5 {
		t.Errorf("Flows() has %d flows, want 5", got)
	}
}

func portStrings(ps []probe.PortSpec) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

func TestLoadCatalogFSBad(t *testing.T) {
	tests := map[string][]string{
		"empty.yaml": {
			`catalog/empty.yaml: empty catalog file`,
		},
		"not-a-mapping.yaml": {
			`catalog/not-a-mapping.yaml:1: a catalog file must be a mapping`,
		},
		"syntax.yaml": {
			`catalog/syntax.yaml:3: invalid YAML: did not find expected '-' indicator`,
		},
		"top.yaml": {
			`catalog/top.yaml:1: product "another-name" does not match the file name "top.yaml"`,
			`catalog/top.yaml:1: missing title`,
			`catalog/top.yaml:2: documents is empty`,
			`catalog/top.yaml:5: role must be a mapping`,
			`catalog/top.yaml:6: flows must be a list`,
		},
		"unknown-keys.yaml": {
			`catalog/unknown-keys.yaml:3: unknown key "vendor" in a catalog file (known: documents, flows, product, roles, title)`,
			`catalog/unknown-keys.yaml:5: missing language in document`,
			`catalog/unknown-keys.yaml:8: unknown key "lang" in document (known: file, id, language, title)`,
			`catalog/unknown-keys.yaml:10: missing description in role "node"`,
			`catalog/unknown-keys.yaml:11: unknown key "desc" in role (known: description, name)`,
			`catalog/unknown-keys.yaml:13: flow "gui-rmi": missing source`,
			`catalog/unknown-keys.yaml:14: flow "gui-rmi": unknown key "sorce" in flow (known: app, condition, configurable, destination, footnotes, hostname, id, note, ports, printed, protocol, purpose, required, revisions, section, source)`,
			`catalog/unknown-keys.yaml:21: flow "gui-rmi": key "section" is set twice in flow`,
		},
		"printed.yaml": {
			`catalog/printed.yaml:10: flow "same": printed tcp/25 is what the flow checks; leave printed out`,
			`catalog/printed.yaml:11: flow "bad-form": printed "25" is not PROTOCOL/PORT[,PORT...] with protocol tcp or udp`,
			`catalog/printed.yaml:12: flow "bad-port": printed "udp/0": port 0 is outside 1..65535`,
			`catalog/printed.yaml:13: flow "bad-rev": printed: "ja" is not a revision of the flow (en)`,
			`catalog/printed.yaml:14: flow "ping": printed: icmp flows have no ports`,
		},
		"roles.yaml": {
			`catalog/roles.yaml:8: duplicate role "node"`,
			`catalog/roles.yaml:10: role "GUI_Client" is not kebab-case (a-z, 0-9, -)`,
			`catalog/roles.yaml:15: flow "gui-rmi": destination "gui-client" is not a declared role`,
			`catalog/roles.yaml:22: flow "admin": source "admin" is not a declared role`,
		},
		"ids.yaml": {
			`catalog/ids.yaml:9: flow "ssh": duplicate flow id (first defined on line 8)`,
			`catalog/ids.yaml:10: flow #3: missing id`,
			`catalog/ids.yaml:11: flow "Bad_ID": id is not kebab-case (a-z, 0-9, -)`,
		},
		"ports.yaml": {
			`catalog/ports.yaml:12: flow "bad-ports": ports: port 0 is outside 1..65535`,
			`catalog/ports.yaml:12: flow "bad-ports": ports: port 70000 is outside 1..65535`,
			`catalog/ports.yaml:12: flow "bad-ports": ports: port range "20-10" is reversed`,
			`catalog/ports.yaml:12: flow "bad-ports": ports: port "abc" is not a number, a LOW-HIGH range, "dynamic" or "ephemeral"`,
			`catalog/ports.yaml:12: flow "bad-ports": ports: "1.5" is not a port, a LOW-HIGH range, "dynamic" or "ephemeral"`,
			`catalog/ports.yaml:12: flow "bad-ports": ports: "true" is not a port, a LOW-HIGH range, "dynamic" or "ephemeral"`,
			`catalog/ports.yaml:12: flow "bad-ports": ports: port "6910–6930" is not a number, a LOW-HIGH range, "dynamic" or "ephemeral" (write a range with an ASCII hyphen: LOW-HIGH)`,
			`catalog/ports.yaml:12: flow "bad-ports": ports: 22 listed twice`,
			`catalog/ports.yaml:12: flow "bad-ports": ports: port 65536 is outside 1..65535`,
			`catalog/ports.yaml:20: flow "icmp-with-ports": icmp flows have no ports`,
			`catalog/ports.yaml:24: flow "no-ports": missing ports`,
			`catalog/ports.yaml:35: flow "empty-ports": ports is empty`,
			`catalog/ports.yaml:43: flow "scalar-ports": ports must be a list`,
		},
		"fields.yaml": {
			`catalog/fields.yaml:11: flow "bad-enums": protocol "sctp" is not tcp, udp or icmp`,
			`catalog/fields.yaml:14: flow "bad-enums": required "mandatory" is not required, optional or conditional`,
			`catalog/fields.yaml:16: flow "no-condition": required is conditional but no condition is given`,
			`catalog/fields.yaml:31: flow "stray-condition": condition given but required is "optional", not conditional`,
			`catalog/fields.yaml:36: flow "both-peers": has both destination and hostname; give one`,
			`catalog/fields.yaml:42: flow "no-peer": missing destination or hostname`,
			`catalog/fields.yaml:51: flow "bad-values": hostname "Bad_Host" is not a lower-case DNS name`,
			`catalog/fields.yaml:54: flow "bad-values": purpose must be a string`,
			`catalog/fields.yaml:56: flow "bad-values": footnotes must be a list`,
			`catalog/fields.yaml:57: flow "bad-values": section is empty`,
			`catalog/fields.yaml:58: flow "bad-values": app "LDAP" is not a lower-case protocol name`,
			`catalog/fields.yaml:59: flow "bad-values": revision "fr" is not a declared document id`,
			`catalog/fields.yaml:59: flow "bad-values": revision "en" listed twice`,
			`catalog/fields.yaml:60: flow "bad-values": configurable must be true or false, not "yes"`,
			`catalog/fields.yaml:61: flow "missing": missing purpose`,
			`catalog/fields.yaml:61: flow "missing": missing required`,
			`catalog/fields.yaml:61: flow "missing": missing section`,
		},
	}
	files, err := filepath.Glob("testdata/bad/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(tests) {
		t.Errorf("%d bad files, %d test cases: every bad file needs its expected errors", len(files), len(tests))
	}
	for _, file := range files {
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			want, ok := tests[name]
			if !ok {
				t.Fatalf("no expected errors for %s", file)
			}
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			cat, err := LoadFS(fstest.MapFS{"catalog/" + name: {Data: data}})
			if cat != nil {
				t.Errorf("got a catalog despite errors")
			}
			got := catalogErrors(t, err)
			if !slices.Equal(got, want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

func TestLoadCatalogFSAcrossFiles(t *testing.T) {
	good, err := os.ReadFile("testdata/good/aaa-minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	bad, err := os.ReadFile("testdata/bad/ids.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{
		"a/aaa-minimal.yaml": {Data: good},
		"b/aaa-minimal.yaml": {Data: good},
		"b/ids.yaml":         {Data: bad},
		"b/README.md":        {Data: []byte("not a catalog file")},
	}
	_, err = LoadFS(fsys)
	want := []string{
		`b/aaa-minimal.yaml:1: product "aaa-minimal" is also defined in a/aaa-minimal.yaml`,
		`b/ids.yaml:9: flow "ssh": duplicate flow id (first defined on line 8)`,
		`b/ids.yaml:10: flow #3: missing id`,
		`b/ids.yaml:11: flow "Bad_ID": id is not kebab-case (a-z, 0-9, -)`,
	}
	if got := catalogErrors(t, err); !slices.Equal(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	if _, err := LoadFS(fstest.MapFS{"README.md": {Data: []byte("x")}}); err == nil || err.Error() != "load catalog: no *.yaml files" {
		t.Errorf("empty catalog: error %v, want load catalog: no *.yaml files", err)
	}
}

func BenchmarkLoadCatalog(b *testing.B) {
	for b.Loop() {
		if _, err := Load(); err != nil {
			b.Fatal(err)
		}
	}
}
