//go:build lab

package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// buildPackage runs `make FORMAT VERSION=version` into a directory of its
// own and returns the package's path.
func buildPackage(t *testing.T, format, version string) string {
	t.Helper()
	dir := t.TempDir()
	mk := exec.Command("make", format, "VERSION="+version, "PKG_DIR="+dir)
	mk.Dir = ".."
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("make %s: %v\n%s", format, err, out)
	}
	pkgs, _ := filepath.Glob(filepath.Join(dir, "flowprobe*."+format))
	if len(pkgs) != 1 {
		t.Fatalf("make %s wrote %v, want one package", format, pkgs)
	}
	return pkgs[0]
}

func runOK(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func exists(path string) bool { _, err := os.Lstat(path); return err == nil }

func userExists(name string) bool { return exec.Command("getent", "passwd", name).Run() == nil }

// unitService reads the [Service] section of an installed unit: its keys
// (continuation lines joined) in file order.
func unitService(t *testing.T, path string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string][]string{}
	section := ""
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	for line := range strings.SplitSeq(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = line
		case section == "[Service]":
			k, v, _ := strings.Cut(line, "=")
			keys[k] = append(keys[k], v)
		}
	}
	return keys
}

// envFile reads a systemd EnvironmentFile: KEY=VALUE lines, values
// optionally in double quotes.
func envFile(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for line := range strings.SplitSeq(string(b), "\n") {
		line = strings.TrimSpace(line)
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			env[k] = strings.Trim(v, `"`)
		}
	}
	return env
}

// execStart is the command line systemd would run for the unit: ExecStart
// with the variables of its EnvironmentFile expanded, a bare $VAR split into
// words as systemd splits it.
func execStart(t *testing.T, keys map[string][]string) []string {
	t.Helper()
	env := map[string]string{}
	for _, f := range keys["EnvironmentFile"] {
		for k, v := range envFile(t, strings.TrimPrefix(f, "-")) {
			env[k] = v
		}
	}
	if len(keys["ExecStart"]) != 1 {
		t.Fatalf("ExecStart = %q, want one", keys["ExecStart"])
	}
	var argv []string
	for _, w := range strings.Fields(keys["ExecStart"][0]) {
		if name, ok := strings.CutPrefix(w, "$"); ok {
			if _, set := env[name]; !set {
				t.Fatalf("ExecStart uses $%s, which no EnvironmentFile sets", name)
			}
			argv = append(argv, strings.Fields(env[name])...)
			continue
		}
		argv = append(argv, w)
	}
	return argv
}

// asUnit runs argv with the identity and capabilities the unit gives its
// service (User=, Group=, AmbientCapabilities=, NoNewPrivileges=), as
// systemd would, through setpriv.
func asUnit(t *testing.T, keys map[string][]string, argv ...string) *exec.Cmd {
	t.Helper()
	args := []string{"--reuid", keys["User"][0], "--regid", keys["Group"][0], "--init-groups"}
	for _, c := range keys["AmbientCapabilities"] {
		for name := range strings.FieldsSeq(c) {
			cap := "+" + strings.ToLower(strings.TrimPrefix(name, "CAP_"))
			args = append(args, "--inh-caps", cap, "--ambient-caps", cap)
		}
	}
	if slices.Contains(keys["NoNewPrivileges"], "yes") {
		args = append(args, "--no-new-privs")
	}
	cmd := exec.Command("setpriv", append(append(args, "--"), argv...)...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}
	cmd.Dir = "/"
	return cmd
}

// freeLoopbackPort returns a port on 127.0.0.1 that nothing listens on: the
// kernel picks it, the test checks it is free by binding it, then lets go.
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// startServe starts cmd, a `flowprobe serve`, and returns once it logs that
// it listens; the process is stopped when the test ends.
func startServe(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", cmd.Args, err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		<-done
	})
	listening := make(chan bool, 1)
	var logs bytes.Buffer
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			logs.WriteString(sc.Text() + "\n")
			if !sent && strings.Contains(sc.Text(), `msg="Listening on"`) {
				listening <- true
				sent = true
			}
		}
		if !sent {
			listening <- false
		}
		cmd.Wait()
	}()
	select {
	case ok := <-listening:
		if !ok {
			<-done
			t.Fatalf("%v exited before listening:\n%s", cmd.Args, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%v did not listen within 30s", cmd.Args)
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, b)
	}
	return string(b)
}

// procStatus reads the fields of /proc/PID/status.
func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	st := map[string]string{}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			st[k] = strings.TrimSpace(v)
		}
	}
	return st
}

const capNetRaw = 13

func hasCap(t *testing.T, hex string, bit uint) bool {
	v, err := strconv.ParseUint(hex, 16, 64)
	if err != nil {
		t.Fatalf("capability mask %q: %v", hex, err)
	}
	return v&(1<<bit) != 0
}

// TestPackageDeb installs the .deb on this machine as an operator would and
// proves its promises: a system user, conffiles, nothing enabled, the unit's
// own command line serving /metrics as that user with CAP_NET_RAW and
// nothing else, an upgrade that keeps edited config, and a purge that leaves
// nothing behind.
func TestPackageDeb(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: dpkg -i")
	}
	if exec.Command("dpkg-query", "-W", "flowprobe").Run() == nil || userExists("flowprobe") {
		t.Fatal("a flowprobe package or user is already on this machine; the test installs and purges its own")
	}
	v1 := buildPackage(t, "deb", "0.0.1")
	v2 := buildPackage(t, "deb", "0.0.2")
	t.Cleanup(func() {
		if out, err := exec.Command("dpkg", "--purge", "flowprobe").CombinedOutput(); err != nil {
			t.Errorf("dpkg --purge: %v\n%s", err, out)
		}
	})

	out := runOK(t, "dpkg", "-i", v1)
	if !strings.Contains(out, "systemctl enable --now flowprobe") {
		t.Errorf("postinstall does not say how to start flowprobe:\n%s", out)
	}
	pw := strings.Split(strings.TrimSpace(runOK(t, "getent", "passwd", "flowprobe")), ":")
	if uid, _ := strconv.Atoi(pw[2]); uid == 0 || uid >= 1000 || !strings.HasSuffix(pw[6], "nologin") {
		t.Errorf("flowprobe user %v: want a system uid (1..999) and no login shell", pw)
	}
	conffiles := runOK(t, "dpkg-query", "-W", "-f=${Conffiles}", "flowprobe")
	for _, f := range []string{"/etc/flowprobe/flowprobe.yml", "/etc/default/flowprobe"} {
		if !strings.Contains(conffiles, " "+f+" ") {
			t.Errorf("%s is not a conffile: %q", f, conffiles)
		}
	}
	if wants, _ := filepath.Glob("/etc/systemd/system/*.wants/flowprobe.service"); len(wants) > 0 {
		t.Errorf("the package enabled the service: %v", wants)
	}
	if st, err := os.Stat("/etc/flowprobe/secrets"); err != nil || st.Mode().Perm() != 0o750 {
		t.Errorf("/etc/flowprobe/secrets: %v %v, want a 0750 directory", st, err)
	}

	const unit = "/usr/lib/systemd/system/flowprobe.service"
	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		if out, err := exec.Command("systemd-analyze", "verify", unit).CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, out)
		}
	}
	keys := unitService(t, unit)
	if keys["User"][0] != "flowprobe" || len(keys["DynamicUser"]) > 0 {
		t.Errorf("unit runs as User=%v DynamicUser=%v, want the package's flowprobe user", keys["User"], keys["DynamicUser"])
	}
	if !slices.Contains(keys["EnvironmentFile"], "/etc/default/flowprobe") {
		t.Errorf("unit reads flags from %v, want /etc/default/flowprobe", keys["EnvironmentFile"])
	}

	// The shipped config is valid, read as the service's user.
	if out, err := asUnit(t, keys, "/usr/bin/flowprobe", "validate", "/etc/flowprobe/flowprobe.yml").CombinedOutput(); err != nil {
		t.Errorf("flowprobe validate of the shipped config: %v\n%s", err, out)
	}

	// An operator moves the listen address in the flags file; the unit's
	// own command line then serves there.
	port := freeLoopbackPort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	flags, err := os.ReadFile("/etc/default/flowprobe")
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(flags), "--web.listen-address=:9871", "--web.listen-address="+addr, 1)
	if edited == string(flags) {
		t.Fatalf("/etc/default/flowprobe does not set --web.listen-address=:9871:\n%s", flags)
	}
	if err := os.WriteFile("/etc/default/flowprobe", []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	argv := execStart(t, keys)
	if argv[0] != "/usr/bin/flowprobe" || argv[1] != "serve" {
		t.Fatalf("ExecStart runs %v", argv)
	}
	serve := asUnit(t, keys, argv...)
	startServe(t, serve)
	st := procStatus(t, serve.Process.Pid)
	if uid := strings.Fields(st["Uid"]); uid[0] != pw[2] || uid[1] != pw[2] {
		t.Errorf("serve runs as uid %v, want flowprobe's %s", uid, pw[2])
	}
	if !hasCap(t, st["CapAmb"], capNetRaw) || !hasCap(t, st["CapEff"], capNetRaw) {
		t.Errorf("serve lacks CAP_NET_RAW: CapAmb %s CapEff %s", st["CapAmb"], st["CapEff"])
	}
	if eff, _ := strconv.ParseUint(st["CapEff"], 16, 64); eff != 1<<capNetRaw {
		t.Errorf("serve holds capabilities %s, want CAP_NET_RAW only", st["CapEff"])
	}
	if body := httpGet(t, "http://"+addr+"/-/healthy"); body == "" {
		t.Error("/-/healthy answered with an empty body")
	}
	if m := httpGet(t, "http://"+addr+"/metrics"); !regexp.MustCompile(`flowprobe_build_info\{[^}]*version="0\.0\.1"`).MatchString(m) {
		t.Errorf("/metrics has no flowprobe_build_info of version 0.0.1:\n%.2000s", m)
	}
	serve.Process.Signal(os.Interrupt)

	// Upgrade: both edited files stay as the operator left them.
	site, err := os.ReadFile("/etc/flowprobe/flowprobe.yml")
	if err != nil {
		t.Fatal(err)
	}
	editedSite := strings.Replace(string(site), "site: example", "site: edited-before-upgrade", 1)
	if err := os.WriteFile("/etc/flowprobe/flowprobe.yml", []byte(editedSite), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := runOK(t, "dpkg", "-i", v2); !strings.Contains(out, "systemctl restart flowprobe") {
		t.Errorf("upgrade does not say how to restart:\n%s", out)
	}
	if got := runOK(t, "dpkg-query", "-W", "-f=${Version}", "flowprobe"); got != "0.0.2-1" {
		t.Errorf("installed version %q after the upgrade, want 0.0.2-1", got)
	}
	if out := runOK(t, "/usr/bin/flowprobe", "version"); !strings.Contains(out, "0.0.2") {
		t.Errorf("flowprobe version after the upgrade:\n%s", out)
	}
	for path, want := range map[string]string{"/etc/flowprobe/flowprobe.yml": editedSite, "/etc/default/flowprobe": edited} {
		if got, _ := os.ReadFile(path); string(got) != want {
			t.Errorf("the upgrade changed %s:\n%s", path, got)
		}
	}

	// Remove keeps the config and the user; purge removes them.
	runOK(t, "dpkg", "--remove", "flowprobe")
	if exists("/usr/bin/flowprobe") || !exists("/etc/flowprobe/flowprobe.yml") || !userExists("flowprobe") {
		t.Error("dpkg --remove: want the binary gone, the config and the user kept")
	}
	runOK(t, "dpkg", "--purge", "flowprobe")
	for _, p := range []string{"/etc/flowprobe", "/etc/default/flowprobe", unit} {
		if exists(p) {
			t.Errorf("%s is left after purge", p)
		}
	}
	if userExists("flowprobe") || exec.Command("getent", "group", "flowprobe").Run() == nil {
		t.Error("the flowprobe user or group is left after purge")
	}
}

// cpioFile returns the content of one file of a newc cpio archive, the
// payload rpm2cpio writes.
func cpioFile(t *testing.T, archive []byte, name string) string {
	t.Helper()
	for off := 0; off+110 <= len(archive); {
		h := archive[off : off+110]
		if string(h[:6]) != "070701" {
			t.Fatalf("cpio: bad magic at %d", off)
		}
		field := func(i int) int {
			v, err := strconv.ParseUint(string(h[6+8*i:14+8*i]), 16, 32)
			if err != nil {
				t.Fatalf("cpio header: %v", err)
			}
			return int(v)
		}
		size, nameSize := field(6), field(11)
		pad4 := func(n int) int { return (n + 3) &^ 3 }
		n := string(archive[off+110 : off+110+nameSize-1])
		data := pad4(off + 110 + nameSize)
		if n == name || n == "."+name {
			return string(archive[data : data+size])
		}
		if n == "TRAILER!!!" {
			break
		}
		off = pad4(data + size)
	}
	t.Fatalf("%s not in the payload", name)
	return ""
}

// TestPackageRPM builds the rpm and reads it with rpm itself: the files and
// their modes, the config files marked noreplace, the scripts that create
// the user and enable nothing, and a unit that reads /etc/sysconfig.
func TestPackageRPM(t *testing.T) {
	if _, err := exec.LookPath("rpm"); err != nil {
		t.Fatal("rpm not found: deploy/testlab/lab.sh install provides it")
	}
	pkg := buildPackage(t, "rpm", "0.0.1")
	files := runOK(t, "rpm", "-qp", "--qf", `[%{FILEFLAGS:fflags} %{FILEMODES:perms} %{FILEUSERNAME} %{FILENAMES}\n]`, pkg)
	for _, want := range []string{
		" -rwxr-xr-x root /usr/bin/flowprobe\n",
		" -rw-r--r-- root /usr/lib/systemd/system/flowprobe.service\n",
		"cn -rw-r--r-- root /etc/flowprobe/flowprobe.yml\n",
		"cn -rw-r--r-- root /etc/sysconfig/flowprobe\n",
	} {
		if !strings.Contains(files, want) {
			t.Errorf("rpm file list lacks %q:\n%s", strings.TrimSpace(want), files)
		}
	}
	if strings.Contains(files, "/etc/default/") {
		t.Errorf("rpm ships Debian's /etc/default:\n%s", files)
	}
	if v := runOK(t, "rpm", "-qp", "--qf", "%{NAME} %{VERSION}-%{RELEASE} %{ARCH}", pkg); v != "flowprobe 0.0.1-1 x86_64" && v != "flowprobe 0.0.1-1 aarch64" {
		t.Errorf("rpm metadata %q", v)
	}
	scripts := runOK(t, "rpm", "-qp", "--scripts", pkg)
	if !strings.Contains(scripts, "useradd --system") || strings.Contains(scripts, "enable --now flowprobe.service") ||
		!strings.Contains(scripts, "systemctl enable --now flowprobe\"") {
		t.Errorf("rpm scripts: want useradd, and the enable command printed, not run:\n%s", scripts)
	}
	// Debian's rpm2cpio writes the whole payload and still exits 1 on
	// these packages; the archive's own trailer says it is complete.
	payload, err := exec.Command("rpm2cpio", pkg).Output()
	if len(payload) == 0 || !bytes.Contains(payload[max(0, len(payload)-512):], []byte("TRAILER!!!")) {
		t.Fatalf("rpm2cpio: %v (%d bytes, no trailer)", err, len(payload))
	}
	unit := cpioFile(t, payload, "/usr/lib/systemd/system/flowprobe.service")
	for _, want := range []string{"\nEnvironmentFile=/etc/sysconfig/flowprobe\n", "\nExecStart=/usr/bin/flowprobe serve $FLOWPROBE_ARGS\n",
		"\nUser=flowprobe\n", "\nAmbientCapabilities=CAP_NET_RAW\n"} {
		if !strings.Contains(unit, want) {
			t.Errorf("rpm's unit lacks %q:\n%s", strings.TrimSpace(want), unit)
		}
	}
}
