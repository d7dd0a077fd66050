package checks

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/flowprobe/flowprobe/probe"
)

// Every kind in the registry is complete: the CLI, docs and config
// validation rely on each field.
func TestRegistryKindsAreComplete(t *testing.T) {
	names := Names()
	if !slices.IsSorted(names) {
		t.Errorf("Names() is not sorted: %v", names)
	}
	for _, want := range []string{"tcp", "tls", "udp"} {
		if !slices.Contains(names, want) {
			t.Errorf("kind %q missing from %v", want, names)
		}
	}
	for _, n := range names {
		k, ok := Lookup(n)
		if !ok {
			t.Fatalf("Lookup(%q) failed for a listed name", n)
		}
		if k.Summary == "" || !k.Transport.Valid() || k.NewOptions == nil || k.Checker == nil {
			t.Errorf("kind %q is incomplete: %+v", n, k)
		}
		if o := k.NewOptions(); reflect.TypeOf(o).Kind() != reflect.Pointer {
			t.Errorf("kind %q: NewOptions returns %T, want a pointer", n, o)
		}
	}
	if _, ok := Lookup("gopher"); ok {
		t.Error("Lookup of an unknown kind succeeded")
	}
}

func TestDecode(t *testing.T) {
	o, err := Decode("tcp", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := o.(*TCPOptions); !ok || got.Send != "" || got.Responder {
		t.Errorf("defaults: %#v", o)
	}
	o, err = Decode("tcp", map[string]any{"send": "HELO\r\n", "responder": false})
	if err != nil {
		t.Fatal(err)
	}
	if got := o.(*TCPOptions); got.Send != "HELO\r\n" {
		t.Errorf("send %q", got.Send)
	}

	cases := []struct {
		kind string
		raw  map[string]any
		msgs []string
	}{
		{"gopher", nil, []string{`unknown check kind "gopher"`, "tcp", "tls", "udp"}},
		{"tcp", map[string]any{"sned": "x"}, []string{"tcp options", "sned"}},
		{"tcp", map[string]any{"responder": "perhaps"}, []string{"tcp options", "perhaps"}},
		{"tcp", map[string]any{"expect": "(("}, []string{"tcp options", "expect"}},
		{"tls", map[string]any{"min_version": "TLS9"}, []string{"tls options", "min_version"}},
	}
	for _, tc := range cases {
		_, err := Decode(tc.kind, tc.raw)
		if err == nil {
			t.Errorf("Decode(%s, %v) succeeded", tc.kind, tc.raw)
			continue
		}
		for _, m := range tc.msgs {
			if !strings.Contains(err.Error(), m) {
				t.Errorf("Decode(%s, %v) = %q, does not name %q", tc.kind, tc.raw, err, m)
			}
		}
		if strings.Contains(err.Error(), "line ") {
			t.Errorf("error %q carries a line number of the re-marshalled options", err)
		}
	}
}

func TestParseSet(t *testing.T) {
	raw, err := ParseSet([]string{"send=QUIT", "responder=true", "count=3", "types=[A, AAAA]", "expect=^220 ", "empty=", `escaped="QUIT\r\n"`, "hash=a #b"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"send": "QUIT", "responder": true, "count": 3, "types": []any{"A", "AAAA"}, "expect": "^220 ", "empty": "", "escaped": "QUIT\r\n", "hash": "a #b"}
	if !reflect.DeepEqual(raw, want) {
		t.Errorf("ParseSet = %#v, want %#v", raw, want)
	}
	if _, err := ParseSet([]string{"novalue", "=x"}); err == nil || !strings.Contains(err.Error(), "novalue") || !strings.Contains(err.Error(), `"=x"`) {
		t.Errorf("bad pairs: %v", err)
	}
}

// Check dispatches through the registry and applies the expectation.
func TestCheckDispatch(t *testing.T) {
	port := loopbackClosedTCPPort(t)
	tg := probe.Target{Host: "127.0.0.1", Port: port, Check: "tcp", Timeout: 5e9}
	r := Check(context.Background(), tg)
	if r.Outcome != probe.OutcomeRefused || r.Success {
		t.Errorf("tcp to a closed port: %s success=%v", r.Outcome, r.Success)
	}
	tg.Check = "gopher"
	if r := Check(context.Background(), tg); r.Err == nil || r.Success || !strings.Contains(r.Error(), "gopher") {
		t.Errorf("unknown kind: %+v", r)
	}
}
