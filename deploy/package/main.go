// Command package builds flowprobe's deb and rpm packages with nfpm, as a
// library: the static binary, a systemd unit derived from
// deploy/systemd/flowprobe.service, the flowprobe system user (created by
// the post-install script, removed on purge), a site config that upgrades
// never overwrite and the unit's flags file (/etc/default/flowprobe for deb,
// /etc/sysconfig/flowprobe for rpm).
//
// It is a module of its own so that nfpm's dependencies stay out of the
// daemon's go.mod. `make deb rpm` (or `make packages`) runs it:
//
//	go run . --binary ../../.build/linux-amd64/flowprobe --version 0.1.0 \
//	    --arch amd64 --format deb --out ../../.build/packages
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	"github.com/goreleaser/nfpm/v2/files"
	_ "github.com/goreleaser/nfpm/v2/rpm" // registers the rpm packager
)

// Where the package puts things, per format.
const (
	binPath    = "/usr/bin/flowprobe"
	unitPath   = "/usr/lib/systemd/system/flowprobe.service"
	configPath = "/etc/flowprobe/flowprobe.yml"
)

// flagsFile is the unit's EnvironmentFile: Debian and Red Hat keep such
// files in different places.
var flagsFile = map[string]string{
	"deb": "/etc/default/flowprobe",
	"rpm": "/etc/sysconfig/flowprobe",
}

func main() { os.Exit(run()) }

func run() int {
	var (
		binary  = flag.String("binary", "", "static flowprobe binary to package")
		version = flag.String("version", "", "package version (semver, e.g. 0.1.0)")
		arch    = flag.String("arch", "amd64", "Go architecture of the binary")
		formats = flag.String("format", "deb,rpm", "comma-separated package formats: deb, rpm")
		out     = flag.String("out", ".", "directory to write the packages to")
		srcDir  = flag.String("src", ".", "directory of this program (the scripts and files it packages)")
		unit    = flag.String("unit", "../systemd/flowprobe.service", "systemd unit to derive the packaged unit from")
	)
	flag.Parse()
	if *binary == "" || *version == "" {
		fmt.Fprintln(os.Stderr, "package: --binary and --version are required")
		return 2
	}
	for f := range strings.SplitSeq(*formats, ",") {
		path, err := build(f, *binary, strings.TrimPrefix(*version, "v"), *arch, *srcDir, *unit, *out)
		if err != nil {
			slog.Error("package failed", "format", f, "err", err)
			return 1
		}
		fmt.Println(path)
	}
	return 0
}

// build writes one package of the given format to out and returns its path.
func build(format, binary, version, arch, srcDir, unitSrc, out string) (string, error) {
	if flagsFile[format] == "" {
		return "", fmt.Errorf("unknown format %q (want deb or rpm)", format)
	}
	tmp, err := os.MkdirTemp("", "flowprobe-package-")
	if err != nil {
		return "", fmt.Errorf("temporary directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	src, err := os.ReadFile(unitSrc)
	if err != nil {
		return "", fmt.Errorf("read unit: %w", err)
	}
	unit, err := packagedUnit(string(src), flagsFile[format])
	if err != nil {
		return "", fmt.Errorf("%s: %w", unitSrc, err)
	}
	unitFile := filepath.Join(tmp, "flowprobe.service")
	if err := os.WriteFile(unitFile, []byte(unit), 0o644); err != nil {
		return "", fmt.Errorf("write unit: %w", err)
	}
	examples, err := filepath.Glob(filepath.Join(srcDir, "..", "examples", "*.yml"))
	if err != nil || len(examples) == 0 {
		return "", fmt.Errorf("no example configs beside %s: %v", srcDir, err)
	}

	in := func(name string) string { return filepath.Join(srcDir, name) }
	mode := func(m os.FileMode) *files.ContentFileInfo { return &files.ContentFileInfo{Mode: m} }
	contents := files.Contents{
		{Source: binary, Destination: binPath, FileInfo: mode(0o755)},
		{Source: unitFile, Destination: unitPath, FileInfo: mode(0o644)},
		{Source: in("flowprobe.yml"), Destination: configPath, Type: files.TypeConfigNoReplace, FileInfo: mode(0o644)},
		{Source: in("flowprobe.flags"), Destination: flagsFile[format], Type: files.TypeConfigNoReplace, FileInfo: mode(0o644)},
		{Destination: "/etc/flowprobe", Type: files.TypeDir, FileInfo: mode(0o755)},
	}
	for _, e := range examples {
		contents = append(contents, &files.Content{Source: e, Destination: "/usr/share/doc/flowprobe/examples/" + filepath.Base(e), FileInfo: mode(0o644)})
	}
	info := nfpm.WithDefaults(&nfpm.Info{
		Name:        "flowprobe",
		Arch:        arch,
		Platform:    "linux",
		Version:     version,
		Release:     "1",
		Section:     "net",
		Priority:    "optional",
		Maintainer:  "flowprobe maintainers <flowprobe@example.org>",
		Vendor:      "flowprobe",
		Homepage:    "https://github.com/flowprobe/flowprobe",
		Description: "proves that the network flows a product needs really pass\nflowprobe knows the firewall port tables vendors publish, turns them into\nprotocol-aware checks for one site, runs them on a schedule and exports\nthe verdicts as Prometheus metrics.",
		Overridables: nfpm.Overridables{
			Contents: contents,
			Scripts: nfpm.Scripts{
				PostInstall: in("postinstall.sh"),
				PreRemove:   in("preremove.sh"),
				PostRemove:  in("postremove.sh"),
			},
			Deb: nfpm.Deb{Compression: "xz"},
			RPM: nfpm.RPM{Summary: "Proves that the network flows a product needs really pass", Group: "Applications/System"},
		},
	})
	// useradd, groupadd and userdel.
	if format == "deb" {
		info.Depends = []string{"passwd"}
	} else {
		info.Depends = []string{"shadow-utils"}
	}
	if err := nfpm.PrepareForPackager(info, format); err != nil {
		return "", fmt.Errorf("prepare %s: %w", format, err)
	}
	pkgr, err := nfpm.Get(format)
	if err != nil {
		return "", fmt.Errorf("packager: %w", err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", fmt.Errorf("output directory: %w", err)
	}
	path := filepath.Join(out, pkgr.ConventionalFileName(info))
	f, err := os.Create(path)
	if err != nil {
		return "", fmt.Errorf("create package: %w", err)
	}
	if err := pkgr.Package(info, f); err != nil {
		f.Close()
		os.Remove(path)
		return "", fmt.Errorf("build %s: %w", format, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return path, nil
}

// packagedUnit turns the unit users copy by hand into the packaged one: the
// binary in /usr/bin, the package's static flowprobe user instead of a
// dynamic one (so files under /etc/flowprobe/secrets can belong to it), and
// the command line's flags read from the flags file.
func packagedUnit(src, flags string) (string, error) {
	var b strings.Builder
	b.WriteString("# flowprobe, as installed by its package. Flags: " + flags + ".\n" +
		"# Change anything else with `systemctl edit flowprobe`; the postinstall\n" +
		"# script enables nothing: `systemctl enable --now flowprobe` starts it.\n")
	sc := bufio.NewScanner(strings.NewReader(src))
	var inHeader, sawExec, sawUser = true, false, false
	for sc.Scan() {
		line := sc.Text()
		if inHeader && strings.HasPrefix(line, "#") {
			continue // the hand-install instructions
		}
		inHeader = false
		switch {
		case line == "DynamicUser=yes":
			continue
		case line == "User=flowprobe":
			sawUser = true
		case strings.HasPrefix(line, "ExecStart="):
			for strings.HasSuffix(line, "\\") && sc.Scan() {
				line = sc.Text()
			}
			sawExec = true
			b.WriteString("EnvironmentFile=" + flags + "\n")
			b.WriteString("ExecStart=" + binPath + " serve $FLOWPROBE_ARGS\n")
			continue
		}
		b.WriteString(line + "\n")
	}
	if !sawExec || !sawUser {
		return "", errors.New("no ExecStart= or no User=flowprobe line to rewrite")
	}
	return b.String(), nil
}
