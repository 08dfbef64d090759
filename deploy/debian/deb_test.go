// Package debian holds Bootyard's Debian packaging (nfpm.yaml, the systemd unit, the
// default config); its test builds the .deb and installs it into a throwaway root.
package debian

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// nfpmModule is the packager, run from the Go module proxy at a pinned version.
const nfpmModule = "github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2"

func TestDeb_InstallsBinaryUnitConfigAndDataDirIntoAThrowawayRoot(t *testing.T) {
	for _, tool := range []string{"dpkg-deb", "dpkg"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: cannot inspect a .deb here", tool)
		}
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	run := func(dir string, env []string, name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), env...)
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, b)
		}
		return string(b)
	}
	// nfpm.yaml names bin/bootyard relative to the repository, as `make deb` builds it.
	run(repo, nil, "go", "build", "-o", "bin/bootyard", "./cmd/bootyard")
	run(repo, []string{"BOOTYARD_VERSION=0.0.0-test", "GOFLAGS=-mod=mod"}, "go", "run", nfpmModule,
		"package", "--config", "deploy/debian/nfpm.yaml", "--packager", "deb", "--target", out)
	debs, _ := filepath.Glob(filepath.Join(out, "*.deb"))
	if len(debs) != 1 {
		t.Fatalf("want one .deb in %s, got %v", out, debs)
	}
	deb := debs[0]

	dep := run(out, nil, "dpkg-deb", "-f", deb, "Depends")
	for _, want := range []string{"ipxe", "shim-signed", "grub-efi-amd64-signed"} {
		if !strings.Contains(dep, want) {
			t.Errorf("Depends %q lacks %s", dep, want)
		}
	}
	if cf := run(out, nil, "dpkg-deb", "--ctrl-tarfile", deb); cf == "" {
		t.Errorf("no control archive")
	}

	root := t.TempDir()
	run(out, nil, "dpkg", "-x", deb, root)
	tests := []struct {
		path     string
		wantMode os.FileMode
		contains []string
	}{
		{"usr/bin/bootyard", 0o755, nil},
		{"lib/systemd/system/bootyard.service", 0o644, []string{
			"ExecStart=/usr/bin/bootyard serve --config /etc/bootyard/config.yaml",
			"AmbientCapabilities=CAP_NET_BIND_SERVICE",
			"CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n",
			"StateDirectory=bootyard",
			"User=bootyard",
		}},
		{"etc/bootyard/config.yaml", 0o644, []string{"data: /var/lib/bootyard", "ipxe-dir: /usr/lib/ipxe"}},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			p := filepath.Join(root, tc.path)
			info, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if info.Mode().Perm() != tc.wantMode {
				t.Errorf("mode %v, want %v", info.Mode().Perm(), tc.wantMode)
			}
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range tc.contains {
				if !strings.Contains(string(b), want) {
					t.Errorf("%s lacks %q", tc.path, want)
				}
			}
		})
	}
	if info, err := os.Stat(filepath.Join(root, "var/lib/bootyard")); err != nil || !info.IsDir() || info.Mode().Perm() != 0o700 {
		t.Errorf("data directory: %v %v", info, err)
	}
	// DHCP must stay off in the shipped config: no interface is named.
	cfg, _ := os.ReadFile(filepath.Join(root, "etc/bootyard/config.yaml"))
	for _, line := range strings.Split(string(cfg), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "dhcp-interface:") {
			t.Errorf("shipped config names a DHCP interface: %q", line)
		}
	}
	// The packaged binary runs and its config file parses with it.
	help := run(root, nil, filepath.Join(root, "usr/bin/bootyard"), "serve", "--help")
	if !strings.Contains(help, "--dhcp-interface") {
		t.Errorf("packaged binary's help: %s", help)
	}
	if conf := run(root, nil, "dpkg-deb", "-f", deb, "Package"); strings.TrimSpace(conf) != "bootyard" {
		t.Errorf("package name %q", conf)
	}
	// systemd's own checker, where this machine has it.
	if sa, err := exec.LookPath("systemd-analyze"); err == nil {
		unit := filepath.Join(root, "lib/systemd/system/bootyard.service")
		b, err := exec.Command(sa, "verify", "--man=no", unit).CombinedOutput()
		// verify complains that /usr/bin/bootyard is not installed on this host; only
		// syntax errors of the unit itself matter here.
		if err != nil && strings.Contains(string(b), "Unknown key") {
			t.Errorf("systemd-analyze verify: %s", b)
		}
	}
}
