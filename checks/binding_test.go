package checks

import (
	"slices"
	"testing"

	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/probe/site"
)

// Binder is the binder site.Plan uses.
var _ site.Binder = Binder{}

func TestBinderKindFor(t *testing.T) {
	var b Binder
	for _, tc := range []struct {
		app   string
		proto probe.Protocol
		kind  string
		mode  any // the ldap mode the hint implies, or nil
	}{
		{"ldap", probe.TCP, "ldap", nil},
		{"ldaps", probe.TCP, "ldap", "ldaps"},
		{"iscsi", probe.TCP, "iscsi", nil},
		{"snmp", probe.UDP, "snmp", nil},
		{"ntp", probe.UDP, "ntp", nil},
		{"http", probe.TCP, "http", nil},
		{"https", probe.TCP, "tls", nil},
		{"ssh", probe.TCP, "ssh", nil},
		{"ftp", probe.TCP, "banner", nil},
		{"winrm", probe.TCP, "http", nil},
		{"smb", probe.TCP, "smb", nil},
		{"rdp", probe.TCP, "rdp", nil},
		{"vnc", probe.TCP, "vnc", nil},
		// The catalog prints its smtp flow as UDP.
		{"smtp", probe.UDP, "udp", nil},
		{"rmi", probe.TCP, "rmi", nil},
		{"dns", probe.UDP, "dns", nil},
		{"dns", probe.TCP, "dns", nil},
		{"slp", probe.TCP, "slp", nil},
		{"kerberos", probe.UDP, "kerberos", nil},
		{"nfs", probe.TCP, "rpc", nil},
		{"", probe.UDP, "udp", nil},
		{"icmp-echo", probe.ICMP, "icmp", nil},
		{"", probe.ICMP, "icmp", nil},
		// A hint on a transport its check does not speak falls back.
		{"ntp", probe.TCP, "tcp", nil},
		{"snmp", probe.TCP, "tcp", nil},
		{"ldap", probe.UDP, "udp", nil},
	} {
		kind, opts := b.KindFor(tc.app, tc.proto)
		if kind != tc.kind {
			t.Errorf("KindFor(%q, %s) = %q, want %q", tc.app, tc.proto, kind, tc.kind)
		}
		if got := opts["mode"]; got != tc.mode {
			t.Errorf("KindFor(%q, %s) mode = %v, want %v", tc.app, tc.proto, got, tc.mode)
		}
	}
	// A vendor's table names a port, not a URL: any HTTP answer of the
	// port itself proves an http flow.
	if _, opts := b.KindFor("http", probe.TCP); opts["any_status"] != true || opts["no_follow_redirects"] != true {
		t.Errorf("http hint options %v, want any_status and no_follow_redirects", opts)
	}
}

// Every kind the binding can produce is registered, and the options a hint
// implies decode for its kind.
func TestBinderKindsExist(t *testing.T) {
	var b Binder
	names := Names()
	for key, h := range hints() {
		app := key.app
		if !slices.Contains(names, h.kind) {
			t.Errorf("hint %s maps to unknown check kind %q", app, h.kind)
		}
		kind, opts := b.KindFor(app, h.proto)
		o, err := b.Decode(kind, opts)
		if err != nil {
			t.Errorf("hint %s over %s: options %v do not decode: %v", app, h.proto, opts, err)
			continue
		}
		// A kind bound over a transport other than its own must be told
		// to use it.
		k, _ := Lookup(h.kind)
		if to, ok := o.(interface{ transport() string }); ok {
			if to.transport() != string(h.proto) {
				t.Errorf("hint %s over %s: the %s check would use %s", app, h.proto, kind, to.transport())
			}
		} else if k.Transport != h.proto {
			t.Errorf("hint %s: kind %s speaks %s, binding says %s", app, h.kind, k.Transport, h.proto)
		}
	}
	for _, p := range []probe.Protocol{probe.TCP, probe.UDP, probe.ICMP} {
		if kind, _ := b.KindFor("no-such-hint", p); !b.Known(kind) {
			t.Errorf("fallback kind %q for %s is not registered", kind, p)
		}
	}
}

func TestBinderKnownAndDecode(t *testing.T) {
	var b Binder
	if b.Known("telnet") || !b.Known("tcp") {
		t.Fatalf("Known: telnet=%v tcp=%v", b.Known("telnet"), b.Known("tcp"))
	}
	o, err := b.Decode("tcp", map[string]any{"responder": true})
	if err != nil {
		t.Fatal(err)
	}
	if !o.(*TCPOptions).Responder {
		t.Errorf("responder option lost: %+v", o)
	}
	if _, err := b.Decode("ldap", map[string]any{"password": "x"}); err == nil {
		t.Error("a literal password option decoded; want an unknown-field error")
	}
}

// Hints handed back are copies: changing one must not change the table.
func TestBinderHintOptionsAreCopies(t *testing.T) {
	var b Binder
	_, opts := b.KindFor("ldaps", probe.TCP)
	opts["mode"] = "plain"
	if _, again := b.KindFor("ldaps", probe.TCP); again["mode"] != "ldaps" {
		t.Errorf("hint table changed through a returned map: %v", again)
	}
}

// A responder role is checked with the plain transport check in responder
// mode; icmp is not changed by a responder.
func TestBinderResponderKind(t *testing.T) {
	var b Binder
	for _, proto := range []probe.Protocol{probe.TCP, probe.UDP} {
		kind, opts, ok := b.ResponderKind(proto)
		if !ok || kind != string(proto) || opts["responder"] != true {
			t.Errorf("%s: %q %v %v", proto, kind, opts, ok)
		}
		if _, err := b.Decode(kind, opts); err != nil {
			t.Errorf("%s: the options do not decode: %v", proto, err)
		}
	}
	if _, _, ok := b.ResponderKind(probe.ICMP); ok {
		t.Error("icmp has a responder kind")
	}
}
