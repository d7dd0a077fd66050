//go:build lab

package deploy_test

import (
	"debug/elf"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// TestImage builds the container image the way a user does (`make image`,
// with buildah or podman from Debian; the image starts from scratch, so no
// registry is needed) and inspects what it promises: a non-root user,
// flowprobe as the entrypoint, the default port, and a static binary.
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
