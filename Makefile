# Bootyard. `make run` starts the server; `make test` runs every test. Both install what
# they need on a fresh Debian machine (as root): Debian packages through apt-get, Go
# modules through the Go module proxy.

export PATH := /usr/local/go/bin:$(PATH)
GO      ?= go
BIN     := bin
DATA    ?= ./data
LISTEN  ?= 127.0.0.1:8080
# Short, bounded fuzzing of every network parser in `make test`.
FUZZTIME ?= 15s

# Debian packages: what the server needs at run time, and what the tests drive.
RUN_DEBS  := ipxe grub-efi-amd64-bin shim-signed grub-efi-amd64-signed dosfstools mtools ca-certificates
TEST_DEBS := $(RUN_DEBS) iproute2 curl isc-dhcp-client busybox tftp-hpa dnsmasq-base \
	qemu-system-x86 ipxe-qemu ovmf cloud-init xorriso genisoimage util-linux \
	chromium mtools dosfstools gdisk wrk vagrant vagrant-libvirt debootstrap e2fsprogs openipmi ipmitool

.PHONY: all build images demo run test test-go fuzz lint deps-run deps-test deb vagrant-validate clean crds

all: build

# install_debs installs only the packages that are missing, so repeat runs cost nothing.
define install_debs
	@missing=""; for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
endef

deps-run:
	$(call install_debs,$(RUN_DEBS))

deps-test:
	$(call install_debs,$(TEST_DEBS))

build:
	$(GO) build -o $(BIN)/bootyard ./cmd/bootyard
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w" -o $(BIN)/bootyard-agent ./cmd/bootyard-agent
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w" -o $(BIN)/bootyard-demo-os ./cmd/bootyard-demo-os
	$(GO) build -o $(BIN)/bootyard-demo ./cmd/bootyard-demo

# The installer agent's kernel (Debian's linux-image-amd64, fetched once into
# .cache/kernel) and initramfs (built in Go), into $(DATA)/agent where serve finds them.
images: build
	@[ -d .cache/kernel ] || apt-cache show linux-image-amd64 >/dev/null 2>&1 || apt-get update -qq
	$(BIN)/bootyard image build-agent --data $(DATA) --kernel-cache .cache/kernel

# The lab on this machine: a namespace, Bootyard with DHCP on its bridge, two QEMU
# machines (BIOS, UEFI) that install a demo image; the web page on 127.0.0.1:8080.
# DEMO_ARGS=--secure-boot runs the UEFI machine with Secure Boot enforced.
demo: deps-test build
	$(BIN)/bootyard-demo --bootyard $(BIN)/bootyard --listen $(LISTEN) $(DEMO_ARGS)

run: deps-run images
	$(BIN)/bootyard serve --data $(DATA) --listen $(LISTEN)

# The bootyard.io API's deep-copy functions and its CRD manifests (deploy/crds), generated
# from the Go types in api/v1alpha1; a test fails when they drift.
CONTROLLER_GEN := $(GO) run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0
crds:
	$(CONTROLLER_GEN) object paths=./api/... crd:crdVersions=v1 output:crd:dir=deploy/crds

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

test: deps-test lint build vagrant-validate test-go fuzz

# The Vagrantfile cannot run here (no nested virtualisation); its syntax and config are checked.
vagrant-validate:
	VAGRANT_DEFAULT_PROVIDER=libvirt vagrant validate

# The timeout is per package: cmd/bootyard boots QEMU under TCG many times, and on a fresh
# clone its real-OS test first builds a Debian image (debootstrap, about 10 minutes).
test-go:
	$(GO) test -count=1 -timeout 60m ./...

# Each fuzz target runs for FUZZTIME on its checked-in seed corpus and what it finds
# (scripts/fuzz says how it tells Go's fuzztime deadline race from a finding).
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz

# The Debian package (nfpm from the Go module proxy, pinned): binary, systemd unit,
# /etc/bootyard/config.yaml, /var/lib/bootyard, Depends: ipxe.
VERSION ?= 0.1.0
NFPM    := github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
deb: build
	BOOTYARD_VERSION=$(VERSION) GOFLAGS=-mod=mod $(GO) run $(NFPM) package \
		--config deploy/debian/nfpm.yaml --packager deb --target $(BIN)/

clean:
	rm -rf $(BIN)
