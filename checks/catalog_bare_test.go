package checks

import (
	"maps"
	"slices"
	"testing"

	"github.com/flowprobe/flowprobe/probe"
	"github.com/flowprobe/flowprobe/probe/catalog"
)

// Why a TCP catalog flow is still proven by a bare connect.
const (
	bareNoApp      = "the document names no application protocol for the port"
	bareVendor     = "a vendor's own protocol with no public specification"
	bareUDPOnly    = "the protocol is UDP; the table also prints TCP, kept as printed"
	bareNotChecked = "the port is dynamic or a range: the flow is not turned into targets"
)

// bareTCPFlows lists every TCP catalog flow that the binding leaves to the
// plain tcp check, with the reason. A new TCP flow must either get a
// protocol-aware kind through its app hint or be listed here.
var bareTCPFlows = map[string]string{
	"citrix-app-layering/admin-log-download":          bareNoApp,
	"citrix-app-layering/appliance-to-agent":          bareNoApp,
	"citrix-app-layering/agent-log-delivery":          bareNoApp,
	"citrix-app-layering/internal-admin-log-download": bareNoApp,
	"citrix-app-layering/prism-disk-upload":           bareNoApp,
	"citrix-app-layering/key-log-download":            bareNoApp,
	"citrix-app-layering/agent-commands":              bareNoApp,
	"citrix-app-layering/agent-key-log-export":        bareNoApp,
	"citrix-app-layering/connector-provisioning":      bareNoApp,
	"citrix-app-layering/connector-hyperv":            bareNoApp,
	"citrix-app-layering/connector-nutanix-2222":      bareNoApp,

	"lenovo-xclarity-administrator/auth-saml":                      bareNoApp,
	"lenovo-xclarity-administrator/push-apple":                     bareNoApp,
	"lenovo-xclarity-administrator/push-google":                    bareNoApp,
	"lenovo-xclarity-administrator/warranty-china":                 bareNoApp,
	"lenovo-xclarity-administrator/cmm-tcp-command":                bareVendor,
	"lenovo-xclarity-administrator/cmm-secure-tcp-command":         bareVendor,
	"lenovo-xclarity-administrator/thinksystem-sftp":               bareNoApp,
	"lenovo-xclarity-administrator/thinksystem-remote-control":     bareVendor,
	"lenovo-xclarity-administrator/thinksystem-remote-kvm":         bareVendor,
	"lenovo-xclarity-administrator/thinksystem-firmware-update":    bareVendor,
	"lenovo-xclarity-administrator/systemx-remote-control":         bareVendor,
	"lenovo-xclarity-administrator/systemx-remote-kvm":             bareVendor,
	"lenovo-xclarity-administrator/systemx-firmware-update":        bareVendor,
	"lenovo-xclarity-administrator/flex-remote-control":            bareVendor,
	"lenovo-xclarity-administrator/flex-remote-kvm":                bareVendor,
	"lenovo-xclarity-administrator/flex-firmware-update":           bareVendor,
	"lenovo-xclarity-administrator/thinksystem-firmware-update-in": bareVendor,
	"lenovo-xclarity-administrator/systemx-firmware-update-in":     bareVendor,
	"lenovo-xclarity-administrator/flex-firmware-update-in":        bareVendor,

	"sios-lifekeeper/comm-path":        bareVendor,
	"sios-lifekeeper/lkwmc-5000":       bareNoApp,
	"sios-lifekeeper/lkwmc-5110":       bareNoApp,
	"sios-lifekeeper/data-replication": bareNotChecked,

	"xenserver/license-initial":  bareVendor,
	"xenserver/license-checkout": bareVendor,
	"xenserver/ntp-tcp":          bareUDPOnly,
	"xenserver/clustering-tcp":   bareVendor,
}

// Every TCP catalog flow that a bare connect proves is listed with its
// reason, and the list names no flow that has a protocol-aware kind.
func TestCatalogBareTCPFlows(t *testing.T) {
	cat, err := catalog.Load()
	if err != nil {
		t.Fatal(err)
	}
	listed := maps.Clone(bareTCPFlows)
	for _, f := range cat.Flows() {
		if f.Protocol != probe.TCP {
			continue
		}
		key := f.Product + "/" + f.ID
		kind, _ := Binder{}.KindFor(f.App, f.Protocol)
		reason, ok := listed[key]
		delete(listed, key)
		switch {
		case kind == "tcp" && !ok:
			t.Errorf("%s (app %q, ports %v) is checked by a bare connect: bind its app hint to a kind, or list it in bareTCPFlows with the reason", key, f.App, f.Ports)
		case kind == "tcp" && reason == "":
			t.Errorf("%s: listed without a reason", key)
		case kind != "tcp" && ok:
			t.Errorf("%s is checked by %s now: remove it from bareTCPFlows", key, kind)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(listed)) {
		t.Errorf("%s is listed in bareTCPFlows but is not a TCP catalog flow", key)
	}
}
