//go:build lab

package deploy_test

import (
	"bufio"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestImage builds the container image the way a user does (`make image`,
// with buildah or podman from Debian; the image starts from scratch, so no
// registry is needed), inspects what it promises (a non-root user,
// flowprobe as the entrypoint, the default port, a static binary) and then
// starts it (runImage).
func TestImage(t *testing.T) {
	tool := "buildah"
	if _, err := exec.LookPath("podman"); err == nil {
		tool = "podman"
	} else if _, err := exec.LookPath("buildah"); err != nil {
		t.Fatal("neither podman nor buildah is installed: deploy/testlab/lab.sh install provides buildah")
	}
	const image = "localhost/flowprobe:test"
	mk := exec.Command("make", "image", "IMAGE="+image)
	mk.Dir = ".."
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command(tool, "rmi", image).Run() })

	var cfg struct {
		User         string              `json:"User"`
		Entrypoint   []string            `json:"Entrypoint"`
		Cmd          []string            `json:"Cmd"`
		ExposedPorts map[string]struct{} `json:"ExposedPorts"`
	}
	switch tool {
	case "buildah":
		out, err := exec.Command("buildah", "inspect", "--type", "image", image).Output()
		if err != nil {
			t.Fatalf("buildah inspect: %v", err)
		}
		var d struct {
			OCIv1 struct {
				Config json.RawMessage `json:"config"`
			} `json:"OCIv1"`
		}
		if err := json.Unmarshal(out, &d); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(d.OCIv1.Config, &cfg); err != nil {
			t.Fatal(err)
		}
	default:
		out, err := exec.Command("podman", "image", "inspect", "--format", "{{json .Config}}", image).Output()
		if err != nil {
			t.Fatalf("podman inspect: %v", err)
		}
		if err := json.Unmarshal(out, &cfg); err != nil {
			t.Fatal(err)
		}
	}
	if cfg.User != "65534:65534" {
		t.Errorf("user %q, want the non-root 65534:65534", cfg.User)
	}
	if !slices.Equal(cfg.Entrypoint, []string{"/bin/flowprobe"}) {
		t.Errorf("entrypoint %v", cfg.Entrypoint)
	}
	if !slices.Equal(cfg.Cmd, []string{"serve", "--config.file=/etc/flowprobe/flowprobe.yml"}) {
		t.Errorf("cmd %v", cfg.Cmd)
	}
	if _, ok := cfg.ExposedPorts["9871/tcp"]; !ok || len(cfg.ExposedPorts) != 1 {
		t.Errorf("exposed ports %v, want 9871/tcp", cfg.ExposedPorts)
	}

	// The binary copied into the image: static, no interpreter, no
	// shared libraries (an empty base has none to offer).
	bin := filepath.Join("..", ".build", "linux-"+goarch(t), "flowprobe")
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s has a %v program header: not a static binary", bin, p.Type)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("%s needs shared libraries %v", bin, libs)
	}

	runImage(t, image, cfg.Entrypoint, cfg.Cmd)
}

// runImage starts the image's own entrypoint from its mounted filesystem,
// as its user (65534) in a network namespace of its own with only
// loopback: `version`, `validate` of the default config, then the default
// command, which must answer /-/healthy and /metrics. A missing file, a
// dynamic binary or a default config that does not load fails here.
func runImage(t *testing.T, image string, entrypoint, cmd []string) {
	ctr, err := exec.Command("buildah", "from", image).Output()
	if err != nil {
		t.Fatalf("buildah from %s: %v", image, err)
	}
	name := strings.TrimSpace(string(ctr))
	t.Cleanup(func() { exec.Command("buildah", "rm", name).Run() })
	mnt, err := exec.Command("buildah", "mount", name).Output()
	if err != nil {
		t.Fatalf("buildah mount: %v", err)
	}
	root := strings.TrimSpace(string(mnt))
	t.Cleanup(func() { exec.Command("buildah", "umount", name).Run() })

	// in runs args in the image's root as 65534, in a new network
	// namespace whose loopback is up.
	in := func(args ...string) *exec.Cmd {
		return exec.Command("unshare", append([]string{"--net", "--", "sh", "-ec",
			`ip link set lo up; root=$1; shift; exec chroot --userspec=65534:65534 "$root" "$@"`, "sh", root}, args...)...)
	}
	if out, err := in(append(entrypoint, "version")...).CombinedOutput(); err != nil || !strings.Contains(string(out), "flowprobe") {
		t.Errorf("%v version: %v\n%s", entrypoint, err, out)
	}
	var config string
	for _, a := range cmd {
		if c, ok := strings.CutPrefix(a, "--config.file="); ok {
			config = c
		}
	}
	if out, err := in(append(entrypoint, "validate", config)...).CombinedOutput(); err != nil {
		t.Errorf("%v validate %s: %v\n%s", entrypoint, config, err, out)
	}

	serve := in(append(entrypoint, cmd...)...)
	startServe(t, serve)
	// unshare, sh and chroot exec one another: the pid is flowprobe's, and
	// so is the network namespace.
	if st := procStatus(t, serve.Process.Pid); strings.Fields(st["Uid"])[0] != "65534" {
		t.Errorf("serve runs as uid %s, want 65534", st["Uid"])
	}
	for path, want := range map[string]string{"/-/healthy": "", "/metrics": "flowprobe_build_info{"} {
		body := getInNetns(t, serve.Process.Pid, "127.0.0.1:9871", path)
		if !strings.Contains(body, want) {
			t.Errorf("GET %s in the image's namespace: no %q in\n%.1000s", path, want, body)
		}
	}
}

// getInNetns sends GET path to addr from inside the network namespace of
// process pid, and returns the body of a 200 answer. The socket is made on
// a thread that joined the namespace and never leaves it: the goroutine
// ends locked, so Go retires the thread.
func getInNetns(t *testing.T, pid int, addr, path string) string {
	t.Helper()
	type result struct {
		body string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		ch <- func() result {
			ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
			if err != nil {
				return result{err: err}
			}
			defer ns.Close()
			if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
				return result{err: fmt.Errorf("setns: %w", err)}
			}
			conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				return result{err: err}
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(conn, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, addr)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				return result{err: err}
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err == nil && resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("%s", resp.Status)
			}
			return result{string(b), err}
		}()
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("GET %s%s in pid %d's network namespace: %v", addr, path, pid, r.err)
	}
	return r.body
}

func goarch(t *testing.T) string {
	out, err := exec.Command("go", "env", "GOARCH").Output()
	if err != nil {
		t.Fatal(err)
	}
	return string(out[:len(out)-1])
}

// TestCrossBuild builds the static binaries for linux/amd64 and
// linux/arm64 with `make cross` and checks each one's architecture.
func TestCrossBuild(t *testing.T) {
	mk := exec.Command("make", "cross")
	mk.Dir = ".."
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("make cross: %v\n%s", err, out)
	}
	for arch, machine := range map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64} {
		f, err := elf.Open(filepath.Join("..", ".build", "linux-"+arch, "flowprobe"))
		if err != nil {
			t.Fatal(err)
		}
		if f.Machine != machine {
			t.Errorf("linux-%s binary is for %v", arch, f.Machine)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("linux-%s binary is not static", arch)
			}
		}
		f.Close()
	}
}
