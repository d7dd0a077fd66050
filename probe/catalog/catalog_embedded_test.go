package catalog

import (
	"github.com/flowprobe/flowprobe/probe"

	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The embedded catalog: what the documents in /work/shared/port-tables say.

func loadEmbedded(t *testing.T) *Catalog {
	t.Helper()
	cat, err := Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return cat
}

func mustFlow(t *testing.T, cat *Catalog, product, id string) *probe.Flow {
	t.Helper()
	p, ok := cat.Product(product)
	if !ok {
		t.Fatalf("no product %q", product)
	}
	f, ok := p.Flow(id)
	if !ok {
		t.Fatalf("%s: no flow %q", product, id)
	}
	return f
}

// flowIs checks a flow's peers, transport and ports.
func flowIs(t *testing.T, f *probe.Flow, src, dst string, proto probe.Protocol, ports ...string) {
	t.Helper()
	peer := f.Destination
	if peer == "" {
		peer = f.Hostname
	}
	if f.Source != src || peer != dst || f.Protocol != proto || !slices.Equal(portStrings(f.Ports), ports) {
		t.Errorf("%s/%s: %s → %s %s %q, want %s → %s %s %q", f.Product, f.ID,
			f.Source, peer, f.Protocol, portStrings(f.Ports), src, dst, proto, ports)
	}
}

func TestEmbeddedCatalogProducts(t *testing.T) {
	cat := loadEmbedded(t)
	want := map[string]int{
		"citrix-app-layering":           85,
		"lenovo-xclarity-administrator": 97,
		"sios-lifekeeper":               18,
		"xenserver":                     61,
	}
	if got := cat.Names(); !slices.Equal(got, []string{"citrix-app-layering", "lenovo-xclarity-administrator", "sios-lifekeeper", "xenserver"}) {
		t.Fatalf("products %q", got)
	}
	total := 0
	for _, p := range cat.Products {
		if len(p.Flows) != want[p.Name] {
			t.Errorf("%s has %d flows, want %d", p.Name, len(p.Flows), want[p.Name])
		}
		total += len(p.Flows)
		for _, f := range p.Flows {
			if f.File != "catalog/"+p.Name+".yaml" || f.Line == 0 || f.Product != p.Name {
				t.Errorf("%s/%s located at %s:%d in product %q", p.Name, f.ID, f.File, f.Line, f.Product)
			}
		}
	}
	if got := len(cat.Flows()); got != total {
		t.Errorf("Flows() has %d flows, want %d", got, total)
	}
}

func TestEmbeddedCitrixRevisions(t *testing.T) {
	cat := loadEmbedded(t)
	p, _ := cat.Product("citrix-app-layering")
	count := map[string]int{}
	for _, f := range p.Flows {
		count[strings.Join(f.Revisions, ",")]++
	}
	// 15 flows only in en (log download three times; the Citrix Hypervisor,
	// Nutanix and vSphere connector services, twice each), 2 only in ja
	// (port 2222 to Prism twice), 68 in both.
	if want := map[string]int{"en,ja": 68, "en": 15, "ja": 2}; !maps.Equal(count, want) {
		t.Errorf("flows by revisions %v, want %v", count, want)
	}

	// The one number the revisions disagree on: the Azure connector's HTTPS
	// port, 3500 in en and 350 in ja. One flow checks 3500; it keeps what
	// the ja revision prints.
	for _, prefix := range []string{"admin", "internal"} {
		f := mustFlow(t, cat, p.Name, prefix+"-azure-connector-https")
		flowIs(t, f, "admin-user", "appliance", probe.TCP, "3500")
		if !slices.Equal(f.Revisions, []string{"en", "ja"}) {
			t.Errorf("%s revisions %q, want en, ja", prefix, f.Revisions)
		}
		if got := f.PrintedNote(); got != "vendor table (ja) prints tcp/350" {
			t.Errorf("%s printed %q", prefix, got)
		}
		if !strings.Contains(f.Note, "dropped digit") {
			t.Errorf("%s: the 350/3500 disagreement is not explained: %q", prefix, f.Note)
		}
		if _, ok := p.Flow(prefix + "-azure-connector-https-ja"); ok {
			t.Errorf("%s: a second flow for the ja reading", prefix)
		}
	}

	for id, revs := range map[string][]string{
		"admin-log-download":                 {"en"},
		"admin-nutanix-connector-https":      {"en"},
		"internal-hypervisor-connector-http": {"en"},
		"key-log-download":                   {"en"},
		"prism-disk-upload":                  {"ja"},
		"connector-nutanix-2222":             {"ja"},
		"appliance-to-prism":                 {"en", "ja"},
		"admin-azure-connector-http":         {"en", "ja"},
	} {
		if f := mustFlow(t, cat, p.Name, id); !slices.Equal(f.Revisions, revs) {
			t.Errorf("%s revisions %q, want %q", id, f.Revisions, revs)
		}
	}
	flowIs(t, mustFlow(t, cat, p.Name, "prism-disk-upload"), "appliance", "prism", probe.TCP, "2222")
	flowIs(t, mustFlow(t, cat, p.Name, "web-api"), "appliance", "applayeringwebapi.azurewebsites.net", probe.TCP, "443")
	flowIs(t, mustFlow(t, cat, p.Name, "upgrade-media"), "appliance", "alcdn.citrix.com", probe.TCP, "80")
	flowIs(t, mustFlow(t, cat, p.Name, "compositing-iscsi"), "compositing-machine", "appliance", probe.TCP, "3260")
	// Key ports without a transport: DNS both ways, NTP and DHCP over UDP.
	flowIs(t, mustFlow(t, cat, p.Name, "key-ad-dns-udp"), "appliance", "active-directory", probe.UDP, "53")
	flowIs(t, mustFlow(t, cat, p.Name, "key-ad-dns-tcp"), "appliance", "active-directory", probe.TCP, "53")
	flowIs(t, mustFlow(t, cat, p.Name, "key-ntp"), "appliance", "ntp-server", probe.UDP, "123")
	flowIs(t, mustFlow(t, cat, p.Name, "key-dhcp-client"), "dhcp-server", "appliance", probe.UDP, "68")
}

// lenovoGlued is every port in the Lenovo document printed with a footnote
// reference glued to it, as printed → the port read, the footnotes of the
// flows that carry it.
var lenovoGlued = []struct {
	printed string
	flow    string
	proto   probe.Protocol
	port    string
	notes   []string // footnote numbers, "[n]"
}{
	{"3891", "auth-ldap", probe.TCP, "389", []string{"[1]"}},
	{"211", "fwd-ftp", probe.TCP, "21", []string{"[1]"}},
	{"251", "fwd-smtp", probe.TCP, "25", []string{"[1]"}},
	{"801", "fwd-rest", probe.TCP, "80", []string{"[1]"}},
	{"1612", "fwd-snmp-161", probe.UDP, "161", []string{"[2]"}},
	{"1621", "fwd-snmp-162", probe.UDP, "162", []string{"[1]"}},
	{"4431", "fwd-azure", probe.TCP, "443", []string{"[1]"}},
	{"5141", "fwd-syslog", probe.UDP, "514", []string{"[1]"}},
	{"835", "warranty-china", probe.TCP, "83", []string{"[5]"}},
	{"59882", "cmm-cim-http", probe.TCP, "5988", []string{"[2]"}},
	{"60902", "cmm-tcp-command", probe.TCP, "6090", []string{"[2]"}},
	{"221", "cmm-sftp-in", probe.TCP, "22", []string{"[1]"}},
	{"38884", "thinksystem-remote-control", probe.TCP, "3888", []string{"[4]"}},
	{"38894", "systemx-remote-kvm", probe.TCP, "3889", []string{"[4]"}},
	{"38891", "flex-remote-kvm", probe.TCP, "3889", []string{"[1]", "[4]"}},
	{"59883", "flex-cim-http", probe.TCP, "5988", []string{"[3]"}},
	{"59893", "systemx-cim-https", probe.TCP, "5989", []string{"[3]"}},
	{"69905", "thinksystem-firmware-update", probe.TCP, "6990", []string{"[5]"}},
	{"69905", "flex-firmware-update-in", probe.TCP, "6990", []string{"[5]"}},
	{"222", "systemx-sftp-in", probe.TCP, "22", []string{"[2]"}},
	{"506366", "thinksystem-ldaps-patterns", probe.TCP, "50636", []string{"[6]"}},
	{"221", "rack-ssh", probe.TCP, "22", []string{"[1]", "[3]"}},
	{"1612", "rack-snmp", probe.UDP, "161", []string{"[2]"}},
	{"4276", "rack-slp-udp", probe.UDP, "427", []string{"[6]"}},
	{"4276", "rack-slp-tcp", probe.TCP, "427", []string{"[6]"}},
	{"4437", "rack-https", probe.TCP, "443", []string{"[7]"}},
	{"223", "flexsw-ssh", probe.TCP, "22", []string{"[3]"}},
	{"1615", "flexsw-snmp", probe.UDP, "161", []string{"[5]"}},
	{"224", "rack-sftp-in", probe.TCP, "22", []string{"[4]"}},
	{"1622", "flexsw-snmp-trap-in", probe.UDP, "162", []string{"[2]"}},
	{"222", "storage-sftp", probe.TCP, "22", []string{"[2]"}},
	{"4431", "storage-https", probe.TCP, "443", []string{"[1]"}},
	{"4432", "storage-https-in", probe.TCP, "443", []string{"[2]"}},
	{"59855", "os-winrm-http", probe.TCP, "5985", []string{"[1]", "[2]", "[3]", "[5]"}},
	{"59866", "os-winrm-https", probe.TCP, "5986", []string{"[1]", "[2]", "[3]", "[6]"}},
	{"4454", "os-driver-smb", probe.TCP, "445", []string{"[2]", "[4]"}},
	{"84436", "os-deploy-https", probe.TCP, "8443", []string{"[1]", "[2]", "[3]", "[6]"}},
}

func TestEmbeddedLenovoFootnotesResolved(t *testing.T) {
	cat := loadEmbedded(t)
	p, _ := cat.Product("lenovo-xclarity-administrator")
	for _, g := range lenovoGlued {
		f := mustFlow(t, cat, p.Name, g.flow)
		if f.Protocol != g.proto || !slices.Equal(portStrings(f.Ports), []string{g.port}) {
			t.Errorf("%s (printed %s): %s %q, want %s %s", g.flow, g.printed, f.Protocol, portStrings(f.Ports), g.proto, g.port)
		}
		var refs []string
		for _, fn := range f.Footnotes {
			refs = append(refs, fn[:strings.Index(fn, "]")+1])
		}
		if !slices.Equal(refs, g.notes) {
			t.Errorf("%s (printed %s): footnotes %q, want %q", g.flow, g.printed, refs, g.notes)
		}
		if !strings.Contains(f.Note, "Printed \"") || !strings.Contains(f.Note, g.printed) {
			t.Errorf("%s: the note does not show the printed form %s: %q", g.flow, g.printed, f.Note)
		}
	}
	// No printed form with a glued footnote survives as a port, even those
	// that would be valid port numbers.
	bogus := map[int]bool{}
	for _, g := range lenovoGlued {
		n, _ := strconv.Atoi(g.printed)
		bogus[n] = true
	}
	for _, f := range p.Flows {
		for _, ps := range f.Ports {
			if bogus[ps.Low] {
				t.Errorf("%s has port %d, a port with a footnote glued to it", f.ID, ps.Low)
			}
		}
	}
	// Ports printed as is, although a trailing digit could be read as a
	// footnote.
	flowIs(t, mustFlow(t, cat, p.Name, "cmm-secure-tcp-command"), "lxca", "cmm", probe.TCP, "6091")
	flowIs(t, mustFlow(t, cat, p.Name, "cmm-ldaps"), "cmm", "lxca", probe.TCP, "50637")
	flowIs(t, mustFlow(t, cat, p.Name, "auth-saml"), "lxca", "auth-server", probe.TCP, "3268", "3269")
	flowIs(t, mustFlow(t, cat, p.Name, "push-apple"), "lxca", "apple-push", probe.TCP, "443", "2195", "5223")
	flowIs(t, mustFlow(t, cat, p.Name, "push-google"), "lxca", "android.googleapis.com", probe.TCP, "443", "5228", "5229", "5230")
	// Footnote 4: remote control starts in the browser, not on the appliance.
	flowIs(t, mustFlow(t, cat, p.Name, "thinksystem-remote-control"), "web-client", "thinksystem", probe.TCP, "3888")
	if f := mustFlow(t, cat, p.Name, "auth-ldap"); !f.Configurable {
		t.Error("auth-ldap: footnote 1 says the port is configurable")
	}
}

// TestEmbeddedSurelyWrongCorrected checks the values the documents surely
// print wrong: the flow checks the corrected transport or port and keeps
// the printed one, noted.
func TestEmbeddedSurelyWrongCorrected(t *testing.T) {
	cat := loadEmbedded(t)
	for _, c := range []struct {
		flow    string
		proto   probe.Protocol
		ports   []string
		printed string
		note    string
	}{
		{"fwd-smtp", probe.TCP, []string{"25"}, "vendor table prints udp/25", "SMTP runs over TCP"},
		{"fwd-rest", probe.TCP, []string{"80"}, "vendor table prints udp/80", "HTTP runs over TCP"},
		{"fwd-azure", probe.TCP, []string{"443"}, "vendor table prints udp/443", "runs over"},
		{"rack-snmp-trap-in", probe.UDP, []string{"162"}, "vendor table prints tcp/162", "SNMP traps use UDP 162"},
		{"flexsw-snmp-trap-in", probe.UDP, []string{"162"}, "vendor table prints tcp/162", "SNMP traps use UDP 162"},
		{"systemx-ipmi", probe.UDP, []string{"623"}, "vendor table prints tcp/623", "UDP 623"},
		{"push-google", probe.TCP, []string{"443", "5228", "5229", "5230"}, "vendor table prints tcp/443,5288,5299,5230", "typos of 5228 and 5229"},
	} {
		f := mustFlow(t, cat, "lenovo-xclarity-administrator", c.flow)
		if f.Protocol != c.proto || !slices.Equal(portStrings(f.Ports), c.ports) {
			t.Errorf("%s: %s %q, want %s %q", c.flow, f.Protocol, portStrings(f.Ports), c.proto, c.ports)
		}
		if got := f.PrintedNote(); got != c.printed {
			t.Errorf("%s: printed %q, want %q", c.flow, got, c.printed)
		}
		if !strings.Contains(f.Note, c.note) {
			t.Errorf("%s: note %q does not say %q", c.flow, f.Note, c.note)
		}
	}
}

func TestEmbeddedWrongLabelsKeptAndNoted(t *testing.T) {
	cat := loadEmbedded(t)
	for _, c := range []struct {
		product, flow string
		proto         probe.Protocol
		port, note    string
	}{
		{"xenserver", "ntp-tcp", probe.TCP, "123", "NTP runs over UDP"},
		{"xenserver", "ad-int-ldaps-udp", probe.UDP, "636", "no LDAPS over UDP"},
		{"xenserver", "smb-netbios-udp", probe.UDP, "139", "TCP only"},
		{"lenovo-xclarity-administrator", "storage-snmp-trap-in", probe.UDP, "115", "SNMP traps use 162"},
		{"lenovo-xclarity-administrator", "thinksystem-sftp", probe.TCP, "115", "SFTP over SSH normally uses 22"},
		{"sios-lifekeeper", "web-gui", probe.TCP, "778", `"SSL"`},
		{"sios-lifekeeper", "monitoring-api", probe.TCP, "779", `"SSL"`},
	} {
		f := mustFlow(t, cat, c.product, c.flow)
		if f.Protocol != c.proto || !slices.Contains(portStrings(f.Ports), c.port) {
			t.Errorf("%s/%s: %s %q, want %s with %s as the document says", c.product, c.flow, f.Protocol, portStrings(f.Ports), c.proto, c.port)
		}
		if !strings.Contains(f.Note, c.note) {
			t.Errorf("%s/%s: note %q does not say %q", c.product, c.flow, f.Note, c.note)
		}
	}
}

func TestEmbeddedRangesDynamicEphemeralICMP(t *testing.T) {
	cat := loadEmbedded(t)
	repl := mustFlow(t, cat, "sios-lifekeeper", "data-replication")
	flowIs(t, repl, "node", "node", probe.TCP, "10001-65535")
	if !strings.Contains(repl.Note, "10001(TCP) ~") {
		t.Errorf("data-replication: the open-ended range is not explained: %q", repl.Note)
	}
	pvs := mustFlow(t, cat, "xenserver", "pvs-server-ports")
	flowIs(t, pvs, "target-device", "provisioning-server", probe.UDP, "6910-6930")
	if !pvs.Configurable || !pvs.Ports[0].IsRange() {
		t.Errorf("pvs-server-ports: configurable %v, range %v", pvs.Configurable, pvs.Ports[0].IsRange())
	}
	for _, id := range []string{"nfsv3-dynamic-tcp", "nfsv3-dynamic-udp"} {
		f := mustFlow(t, cat, "xenserver", id)
		if len(f.Ports) != 1 || f.Ports[0].Kind != probe.PortDynamic || f.Ports[0].Checkable() {
			t.Errorf("%s ports %q, want dynamic", id, portStrings(f.Ports))
		}
	}
	// RMI runs both ways on ephemeral ports (footnote 5): one flow each way.
	flowIs(t, mustFlow(t, cat, "sios-lifekeeper", "gui-rmi-to-node"), "gui-client", "node", probe.TCP, "ephemeral")
	flowIs(t, mustFlow(t, cat, "sios-lifekeeper", "gui-rmi-to-client"), "node", "gui-client", probe.TCP, "ephemeral")
	ping := mustFlow(t, cat, "sios-lifekeeper", "lkping")
	flowIs(t, ping, "node", "node", probe.ICMP)
	if len(ping.Footnotes) != 1 || !strings.HasPrefix(ping.Footnotes[0], "[3] ") {
		t.Errorf("lkping footnotes %q, want footnote 3", ping.Footnotes)
	}
	// Footnote 3 also covers the hosts a kit depends on: a role of its own.
	target := mustFlow(t, cat, "sios-lifekeeper", "lkping-target")
	flowIs(t, target, "node", "ping-target", probe.ICMP)
	if target.Required != probe.Conditional || !strings.Contains(target.Condition, "ping list") {
		t.Errorf("lkping-target: %s %q", target.Required, target.Condition)
	}
}

// Event forwarding is needed only for the forwarders a site configures.
func TestEmbeddedLenovoForwardersConditional(t *testing.T) {
	cat := loadEmbedded(t)
	for _, id := range []string{"fwd-ftp", "fwd-smtp", "fwd-rest", "fwd-snmp-161", "fwd-snmp-162", "fwd-azure", "fwd-syslog"} {
		f := mustFlow(t, cat, "lenovo-xclarity-administrator", id)
		if f.Required != probe.Conditional || !strings.HasPrefix(f.Condition, "Event forwarding to ") && id != "fwd-snmp-161" {
			t.Errorf("%s: %s %q, want conditional on its forwarder", id, f.Required, f.Condition)
		}
	}
}

// portTablesDir is where the vendor documents live beside the repository.
var portTablesDir = filepath.Join("..", "..", "..", "shared", "port-tables")

var numberRE = regexp.MustCompile(`\d+`)

// TestEmbeddedPortsAppearInDocuments checks the catalog against the text it
// was read from: every port a flow shows as printed (its printed form for
// that revision, else its ports) is printed in each revision that lists the
// flow, and every port-like number printed in a document's tables and port
// lists is such a port of some flow of that revision, over each transport
// the line names. So a corrected flow keeps exactly what the document
// shows.
func TestEmbeddedPortsAppearInDocuments(t *testing.T) {
	if _, err := os.Stat(portTablesDir); err != nil {
		t.Skipf("vendor documents not available: %v", err)
	}
	cat := loadEmbedded(t)
	// Numbers in the port lines that are not ports: dates and versions
	// (values below 20 are skipped as footnote marks and version digits).
	notPorts := map[string][]string{
		"sios-lifekeeper-ports.ja.txt": {"2020", "2025", "2023", "2011", "2012", "2015", "2016", "2017", "2018", "2019"},
	}
	// Lenovo's printed forms with a glued footnote → the port read.
	glued := map[string]string{}
	for _, g := range lenovoGlued {
		glued[g.printed] = g.port
	}
	glued["38891"] = "3889"

	for _, p := range cat.Products {
		for _, d := range p.Documents {
			raw, err := os.ReadFile(filepath.Join(portTablesDir, d.File))
			if err != nil {
				t.Errorf("%s: %v", p.Name, err)
				continue
			}
			text := string(raw)
			ports := map[probe.Protocol]map[int]bool{probe.TCP: {}, probe.UDP: {}}
			for _, f := range p.Flows {
				if !slices.Contains(f.Revisions, d.ID) {
					continue
				}
				proto, printed := f.PrintedFor(d.ID)
				for _, ps := range printed {
					if !ps.Checkable() {
						continue
					}
					ports[proto][ps.Low], ports[proto][ps.High] = true, true
					ends := []int{ps.Low}
					if ps.IsRange() {
						ends = append(ends, ps.High)
					}
					for _, n := range ends {
						if n == 65535 && strings.Contains(f.Note, "10001(TCP) ~") {
							continue // the open-ended "10001 and up"
						}
						if !printedAsNumber(text, n) {
							t.Errorf("%s/%s: port %d is not printed in %s", p.Name, f.ID, n, d.File)
						}
					}
				}
			}
			for i, line := range strings.Split(text, "\n") {
				if !isPortLine(line) {
					continue
				}
				// The transports the line names; none (a key-ports item)
				// means any. "SSL" (SIOS) is TLS over TCP.
				var protos []probe.Protocol
				if strings.Contains(line, "TCP") || strings.Contains(line, "SSL") {
					protos = append(protos, probe.TCP)
				}
				if strings.Contains(line, "UDP") {
					protos = append(protos, probe.UDP)
				}
				for _, tok := range numberRE.FindAllString(line, -1) {
					n, _ := strconv.Atoi(tok)
					if n < 20 || slices.Contains(notPorts[d.File], tok) {
						continue
					}
					if p.Name == "lenovo-xclarity-administrator" && glued[tok] != "" {
						n, _ = strconv.Atoi(glued[tok])
					}
					if len(protos) == 0 && !ports[probe.TCP][n] && !ports[probe.UDP][n] {
						t.Errorf("%s line %d: %d is printed in a port line but is no port of a %s flow: %q", d.File, i+1, n, d.ID, line)
					}
					for _, proto := range protos {
						if !ports[proto][n] {
							t.Errorf("%s line %d: %s %d is printed in a port line but is no port of a %s %s flow: %q", d.File, i+1, proto, n, d.ID, proto, line)
						}
					}
				}
			}
		}
	}
}

// printedAsNumber reports whether n is printed in text at the start of a
// number (a footnote digit may follow it, as in the Lenovo document).
func printedAsNumber(text string, n int) bool {
	s := strconv.Itoa(n)
	for i := 0; ; {
		j := strings.Index(text[i:], s)
		if j < 0 {
			return false
		}
		at := i + j
		if at == 0 || text[at-1] < '0' || text[at-1] > '9' {
			return true
		}
		i = at + 1
	}
}

// isPortLine reports whether a document line is a table row or a port list
// item: the lines whose numbers are ports.
func isPortLine(line string) bool {
	return strings.Contains(line, "|") || strings.Contains(line, "Port") || strings.Contains(line, "ポート") ||
		strings.Contains(line, "(TCP)") || strings.Contains(line, "(SSL)") || strings.Contains(line, "TCP 9090")
}
