# flowprobe — build, test, image.
GO          ?= go
# Release builds use the toolchain go.mod names (its `toolchain` line, with
# the standard library's security fixes), fetched through the module proxy
# when this machine's Go is older; GOTOOLCHAIN=local builds with what is here.
GOTOOLCHAIN ?= auto
export GOTOOLCHAIN
VERSION     ?= $(shell cat VERSION 2>/dev/null || echo 0.0.0)
REVISION    ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
BRANCH      ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
BUILD_DATE  ?= $(shell date -u +%Y%m%d-%H:%M:%S)
BUILD_USER  ?= $(shell id -un)@$(shell hostname)
IMAGE       ?= flowprobe:$(VERSION)
OS          ?= linux
ARCH        ?= $(shell $(GO) env GOARCH)

VERSION_PKG := github.com/prometheus/common/version
LDFLAGS := -s -w \
	-X $(VERSION_PKG).Version=$(VERSION) \
	-X $(VERSION_PKG).Revision=$(REVISION) \
	-X $(VERSION_PKG).Branch=$(BRANCH) \
	-X $(VERSION_PKG).BuildUser=$(BUILD_USER) \
	-X $(VERSION_PKG).BuildDate=$(BUILD_DATE)

.PHONY: all build test bench cross static image image-context packages deb rpm dashboard clean

# Packages are written here; the packager is deploy/package (its own Go
# module, so nfpm stays out of the daemon's go.mod).
PKG_DIR     ?= .build/packages

all: build

## build: a static binary for this machine at ./flowprobe
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o flowprobe ./cmd/flowprobe

## test: the whole test suite (as root: with the lab of real servers)
test:
	./test.sh

## bench: flowprobe side by side with a raw Go loop, blackbox_exporter and Cloudprober
## (as root, in a private network namespace; BENCH_TINY=1 for a quick run; see docs/performance.md)
bench:
	deploy/bench/bench.sh

## cross: static binaries for linux/amd64 and linux/arm64 under .build/
cross:
	for arch in amd64 arm64; do \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' \
			-o .build/linux-$$arch/flowprobe ./cmd/flowprobe || exit 1; \
	done

## static: the static binary for OS/ARCH at .build/OS-ARCH/flowprobe
static:
	CGO_ENABLED=0 GOOS=$(OS) GOARCH=$(ARCH) $(GO) build -trimpath -ldflags '$(LDFLAGS)' \
		-o .build/$(OS)-$(ARCH)/flowprobe ./cmd/flowprobe

## image-context: what the Dockerfile copies from .build/ (then `docker build .` works too)
image-context: static
	cp /etc/ssl/certs/ca-certificates.crt .build/ca-certificates.crt
	printf 'flowprobe %s (%s), staged by make image\n' '$(VERSION)' '$(REVISION)' >.build/run-make-image-first

## image: the container image (podman or buildah; no registry needed, it starts from scratch)
image: image-context
	if command -v podman >/dev/null; then \
		podman build --build-arg OS=$(OS) --build-arg ARCH=$(ARCH) -t $(IMAGE) . ; \
	else \
		buildah bud --build-arg OS=$(OS) --build-arg ARCH=$(ARCH) -t $(IMAGE) . ; \
	fi

## packages: deb and rpm under $(PKG_DIR) (nfpm; see deploy/package)
packages: deb rpm

## deb, rpm: one package each, built from .build/OS-ARCH/flowprobe
deb rpm: static
	cd deploy/package && $(GO) run . --format $@ --version $(VERSION) --arch $(ARCH) \
		--binary $(abspath .build/$(OS)-$(ARCH)/flowprobe) --out $(abspath $(PKG_DIR))

## dashboard: write deploy/grafana/flowprobe.json from deploy/grafana/gen (its own Go
## module, on the Grafana Foundation SDK; a test in deploy/ checks the file is current)
dashboard:
	cd deploy/grafana/gen && $(GO) run . -o ../flowprobe.json

clean:
	rm -rf .build flowprobe
