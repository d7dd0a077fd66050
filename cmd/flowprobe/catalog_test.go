package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/flowprobe/flowprobe/probe/catalog"
)

// runCatalogCLI runs flowprobe in-process and returns its exit code and output.
func runCatalogCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func catalogForTest(t *testing.T) *catalog.Catalog {
	t.Helper()
	cat, err := catalog.Load()
	if err != nil {
		t.Fatalf("LoadCatalog: %v", err)
	}
	return cat
}

func TestCatalogList(t *testing.T) {
	code, out, errOut := runCatalogCLI(t, "catalog", "list")
	if code != exitOK || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	want := [][]string{
		{"PRODUCT", "TITLE", "FLOWS", "DOCUMENTS"},
		{"citrix-app-layering", "Citrix App Layering", "85", "en, ja"},
		{"lenovo-xclarity-administrator", "Lenovo XClarity Administrator", "97", "ja"},
		{"sios-lifekeeper", "SIOS LifeKeeper for Linux", "18", "ja"},
		{"xenserver", "XenServer 8", "61", "ja"},
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), out)
	}
	for i, line := range lines {
		// Columns are separated by two or more spaces.
		var cols []string
		for _, c := range strings.Split(line, "  ") {
			if c = strings.TrimSpace(c); c != "" {
				cols = append(cols, c)
			}
		}
		if !slices.Equal(cols, want[i]) {
			t.Errorf("line %d columns %q, want %q", i+1, cols, want[i])
		}
	}
}

func TestCatalogShow(t *testing.T) {
	code, out, errOut := runCatalogCLI(t, "catalog", "show", "sios-lifekeeper")
	if code != exitOK || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{
		"sios-lifekeeper — SIOS LifeKeeper for Linux (18 flows)\n",
		"  ja: sios-lifekeeper-ports.ja.txt — ",
		"\n== Ports LifeKeeper uses ==\n",
		"\n== Ports between cluster nodes and GUI clients (without X forwarding) ==\n",
		"\n== Ports between cluster nodes and GUI clients (with X forwarding, recommended) ==\n",
		"      footnote:     [1] Not used by LifeKeeper Single Server Protection (SSP).\n",
		"\n* configurable port (the vendor's default)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("show output lacks %q", want)
		}
	}
	// Rows: id, source → destination, protocol, ports, app, required, purpose.
	rows := map[string][]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 8 && f[2] == "→" {
			rows[f[0]] = f[1:8]
		}
	}
	for id, want := range map[string][]string{
		"comm-path":         {"node", "→", "node", "tcp", "7365", "-", "conditional"},
		"monitoring-api":    {"api-client", "→", "node", "tcp", "779*", "https", "conditional"},
		"data-replication":  {"node", "→", "node", "tcp", "10001-65535", "-", "conditional"},
		"lkping":            {"node", "→", "node", "icmp", "-", "icmp-echo", "conditional"},
		"gui-rmi-to-client": {"node", "→", "gui-client", "tcp", "ephemeral", "rmi", "conditional"},
		"gui-ssh-xfwd":      {"gui-client", "→", "node", "tcp", "22", "ssh", "conditional"},
	} {
		if got := rows[id]; !slices.Equal(got, want) {
			t.Errorf("row %s: %q, want %q", id, got, want)
		}
	}
	if len(rows) != 18 {
		t.Errorf("%d flow rows, want 18", len(rows))
	}
}

func TestCatalogShowRevisionsAndHostnames(t *testing.T) {
	code, out, _ := runCatalogCLI(t, "catalog", "show", "citrix-app-layering")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	var azure, web string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || f[2] != "→" {
			continue // not a table row
		}
		switch f[0] {
		case "admin-azure-connector-https":
			azure = strings.Join(f[:9], " ")
		case "web-api":
			web = strings.Join(f[:9], " ")
		}
	}
	if want := "admin-azure-connector-https admin-user → appliance tcp 3500 https conditional en,ja"; azure != want {
		t.Errorf("row %q, want %q", azure, want)
	}
	if want := "web-api appliance → applayeringwebapi.azurewebsites.net tcp 443 https required en,ja"; web != want {
		t.Errorf("row %q, want %q", web, want)
	}
}

func TestCatalogUnknownProduct(t *testing.T) {
	want := `unknown product "nope"; the products are: citrix-app-layering, lenovo-xclarity-administrator, sios-lifekeeper, xenserver` + "\n"
	for _, args := range [][]string{
		{"catalog", "show", "nope"},
		{"catalog", "export", "--product", "nope"},
	} {
		code, out, errOut := runCatalogCLI(t, args...)
		if code != exitUsage || out != "" {
			t.Errorf("%q: exit %d, stdout %q; want exit %d and no output", args, code, out, exitUsage)
		}
		if wantErr := "flowprobe catalog " + args[1] + ": " + want; errOut != wantErr {
			t.Errorf("%q: stderr %q, want %q", args, errOut, wantErr)
		}
	}
	for _, args := range [][]string{
		{"catalog", "show"},
		{"catalog", "export", "--format", "xml"},
	} {
		if code, _, errOut := runCatalogCLI(t, args...); code != exitUsage || errOut == "" {
			t.Errorf("%q: exit %d, stderr %q; want exit %d with a message", args, code, errOut, exitUsage)
		}
	}
}

func TestCatalogExportJSON(t *testing.T) {
	cat := catalogForTest(t)
	code, out, errOut := runCatalogCLI(t, "catalog", "export", "--format", "json")
	if code != exitOK || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	var flows []map[string]any
	dec := json.NewDecoder(strings.NewReader(out))
	dec.UseNumber()
	if err := dec.Decode(&flows); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if len(flows) != len(cat.Flows()) {
		t.Fatalf("%d flows, want %d", len(flows), len(cat.Flows()))
	}
	// The stable interface: exactly these keys, with these JSON types.
	keys := []string{"app", "condition", "configurable", "destination", "footnotes", "hostname", "id", "note", "ports",
		"printed", "product", "protocol", "purpose", "required", "revisions", "section", "source"}
	products := map[string]int{}
	byID := map[string]map[string]any{}
	for _, f := range flows {
		var got []string
		for k := range f {
			got = append(got, k)
		}
		sort.Strings(got)
		if !slices.Equal(got, keys) {
			t.Fatalf("flow keys %q, want %q", got, keys)
		}
		for _, k := range []string{"ports", "footnotes", "revisions", "printed"} {
			if _, ok := f[k].([]any); !ok {
				t.Errorf("%s/%s: %s is %T, want a JSON array (never null)", f["product"], f["id"], k, f[k])
			}
		}
		products[f["product"].(string)]++
		byID[f["product"].(string)+"/"+f["id"].(string)] = f
	}
	if want := map[string]int{"citrix-app-layering": 85, "lenovo-xclarity-administrator": 97, "sios-lifekeeper": 18, "xenserver": 61}; !maps.Equal(products, want) {
		t.Errorf("flows per product %v, want %v", products, want)
	}

	ldap := byID["lenovo-xclarity-administrator/auth-ldap"]
	if p := ldap["ports"].([]any); len(p) != 1 || p[0] != json.Number("389") {
		t.Errorf("auth-ldap ports %#v, want the JSON integer 389", p)
	}
	if ldap["configurable"] != true || ldap["hostname"] != "" || ldap["destination"] != "auth-server" || ldap["protocol"] != "tcp" {
		t.Errorf("auth-ldap %v", ldap)
	}
	if fn := ldap["footnotes"].([]any); len(fn) != 1 || fn[0] != "[1] Default port. This port can be configured from the user interface." {
		t.Errorf("auth-ldap footnotes %q", fn)
	}
	if p := byID["xenserver/pvs-to-target"]["ports"].([]any); !slices.Equal(p, []any{json.Number("6901"), json.Number("6902"), json.Number("6905")}) {
		t.Errorf("pvs-to-target ports %#v", p)
	}
	if p := byID["xenserver/pvs-server-ports"]["ports"].([]any); !slices.Equal(p, []any{"6910-6930"}) {
		t.Errorf("pvs-server-ports ports %#v, want the string 6910-6930", p)
	}
	if p := byID["xenserver/nfsv3-dynamic-udp"]["ports"].([]any); !slices.Equal(p, []any{"dynamic"}) {
		t.Errorf("nfsv3-dynamic-udp ports %#v", p)
	}
	if p := byID["sios-lifekeeper/gui-rmi-to-node"]["ports"].([]any); !slices.Equal(p, []any{"ephemeral"}) {
		t.Errorf("gui-rmi-to-node ports %#v", p)
	}
	ping := byID["sios-lifekeeper/lkping"]
	if p := ping["ports"].([]any); len(p) != 0 || ping["protocol"] != "icmp" {
		t.Errorf("lkping %s ports %#v, want icmp and []", ping["protocol"], p)
	}
	upd := byID["xenserver/updates-repo"]
	if upd["hostname"] != "repo.ops.xenserver.com" || upd["destination"] != "" {
		t.Errorf("updates-repo destination %q hostname %q", upd["destination"], upd["hostname"])
	}
	if r := byID["citrix-app-layering/prism-disk-upload"]["revisions"].([]any); !slices.Equal(r, []any{"ja"}) {
		t.Errorf("prism-disk-upload revisions %q", r)
	}

	// --product narrows the export to one product.
	code, out, _ = runCatalogCLI(t, "catalog", "export", "--product", "xenserver")
	if code != exitOK {
		t.Fatalf("--product xenserver: exit %d", code)
	}
	flows = nil
	if err := json.Unmarshal([]byte(out), &flows); err != nil {
		t.Fatal(err)
	}
	if len(flows) != 61 {
		t.Errorf("--product xenserver: %d flows, want 61", len(flows))
	}
	for _, f := range flows {
		if f["product"] != "xenserver" {
			t.Fatalf("--product xenserver exported a flow of %v", f["product"])
		}
	}
}

func TestCatalogExportCSV(t *testing.T) {
	code, out, errOut := runCatalogCLI(t, "catalog", "export", "--format", "csv", "--product", "lenovo-xclarity-administrator")
	if code != exitOK || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("parse CSV: %v", err)
	}
	if len(recs) != 98 {
		t.Fatalf("%d records, want a header and 97 flows", len(recs))
	}
	header := []string{"product", "id", "source", "destination", "hostname", "protocol", "ports", "purpose",
		"required", "condition", "footnotes", "section", "app", "revisions", "note", "configurable", "printed"}
	if !slices.Equal(recs[0], header) {
		t.Errorf("header %q", recs[0])
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	var winrm []string
	for _, r := range recs[1:] {
		if r[col["id"]] == "os-winrm-https" {
			winrm = r
		}
	}
	if winrm == nil {
		t.Fatal("no os-winrm-https row")
	}
	if winrm[col["ports"]] != "5986" || winrm[col["protocol"]] != "tcp" || winrm[col["source"]] != "lxca" || winrm[col["destination"]] != "os-target" {
		t.Errorf("os-winrm-https row %q", winrm)
	}
	if fn := strings.Split(winrm[col["footnotes"]], "\n"); len(fn) != 4 || !strings.HasPrefix(fn[3], "[6] ") {
		t.Errorf("os-winrm-https footnotes %q, want four, one per line, the last [6]", fn)
	}
	for _, r := range recs[1:] {
		if r[col["id"]] == "push-apple" && r[col["ports"]] != "443 2195 5223" {
			t.Errorf("push-apple ports %q, want space-separated", r[col["ports"]])
		}
	}
}

func TestCatalogExportMarkdown(t *testing.T) {
	code, out, errOut := runCatalogCLI(t, "catalog", "export", "--format", "markdown")
	if code != exitOK || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{
		"## XenServer 8 (`xenserver`)\n",
		"### Citrix Provisioning Services\n",
		"| pvs-server-ports | target-device | provisioning-server | udp | 6910-6930 | conditional | The server port range (configurable; 6910-6930 by default) | When: Citrix Provisioning Services is used<br>Configurable port<br>Note: ",
		"| updates-repo | pool-coordinator | `repo.ops.xenserver.com` | tcp | 443 | conditional |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	rows := 0
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "| ") || strings.HasPrefix(line, "| ID ") {
			continue
		}
		rows++
		// Every row has exactly 9 unescaped pipes: 8 cells.
		if n := strings.Count(line, "|") - strings.Count(line, `\|`); n != 9 {
			t.Errorf("row with %d cell separators: %q", n, line)
		}
	}
	if want := len(catalogForTest(t).Flows()); rows != want {
		t.Errorf("%d table rows, want one per flow (%d)", rows, want)
	}
}
