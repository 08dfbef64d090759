package cloudinit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bootyard/bootyard/cloudinit"
)

// needTool skips with a visible reason when a Debian package the test drives is absent;
// the Makefile installs them (cloud-init, xorriso, genisoimage, util-linux).
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (make test installs it): %v", name, err)
	}
	return p
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func writeSeed(t *testing.T, files map[string][]byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "seed.iso")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := cloudinit.WriteSeedISO(context.Background(), f, files); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSeedISO_LabelCidataAndExactFileNamesAndBytes(t *testing.T) {
	for _, tool := range []string{"xorriso", "isoinfo", "blkid"} {
		needTool(t, tool)
	}
	r := newRenderer(t, cloudinit.Config{})
	files, err := r.Files(fixtureNodes(t)["server"], fixtureSettings(), true)
	if err != nil {
		t.Fatal(err)
	}
	iso := writeSeed(t, files)

	if got := strings.TrimSpace(run(t, "blkid", "-p", "-o", "value", "-s", "LABEL", iso)); got != cloudinit.SeedLabel {
		t.Errorf("blkid LABEL = %q, want %q", got, cloudinit.SeedLabel)
	}
	if got := strings.TrimSpace(run(t, "blkid", "-p", "-o", "value", "-s", "TYPE", iso)); got != "iso9660" {
		t.Errorf("blkid TYPE = %q, want iso9660", got)
	}
	desc := run(t, "isoinfo", "-d", "-i", iso)
	for _, want := range []string{"Volume id: cidata", "Rock Ridge signatures", "Joliet"} {
		if !strings.Contains(desc, want) {
			t.Errorf("isoinfo -d lacks %q:\n%s", want, desc)
		}
	}
	// Each extension must list the exact lower-case names, and give back the exact bytes.
	for _, ext := range []string{"-R", "-J"} {
		listing := run(t, "isoinfo", ext, "-f", "-i", iso)
		for name, body := range files {
			if !strings.Contains(listing, "/"+name+"\n") {
				t.Errorf("isoinfo %s -f does not list /%s:\n%s", ext, name, listing)
			}
			if got := run(t, "isoinfo", ext, "-i", iso, "-x", "/"+name); got != string(body) {
				t.Errorf("isoinfo %s -x /%s: bytes differ:\n%s", ext, name, got)
			}
		}
	}
	dir := filepath.Join(t.TempDir(), "extracted")
	run(t, "xorriso", "-osirrox", "on", "-indev", iso, "-extract", "/", dir)
	for name, body := range files {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("xorriso extract: %v", err)
			continue
		}
		if !bytes.Equal(got, body) {
			t.Errorf("xorriso extract %s: bytes differ", name)
		}
	}
}

// noCloudRead is what cloud-init's own NoCloud datasource made of a seed.
type noCloudRead struct {
	Found          bool                        `json:"found"`
	InstanceID     string                      `json:"instance_id"`
	Hostname       string                      `json:"hostname"`
	UserData       string                      `json:"user_data"`
	VendorData     string                      `json:"vendor_data"`
	NetworkVersion int                         `json:"network_version"`
	Interfaces     map[string][]map[string]any `json:"interfaces"`
}

// readWithCloudInit runs testdata/nocloud_read.py (the real DataSourceNoCloud) under
// Debian's python3, which has the cloud-init package's modules.
func readWithCloudInit(t *testing.T, mode, where string) noCloudRead {
	t.Helper()
	if _, err := os.Stat("/usr/lib/python3/dist-packages/cloudinit/sources/DataSourceNoCloud.py"); err != nil {
		t.Skipf("Debian package cloud-init not installed (make test installs it): %v", err)
	}
	out, err := exec.Command("/usr/bin/python3", "testdata/nocloud_read.py", mode, where).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("nocloud_read.py %s %s: %v\n%s", mode, where, err, stderr)
	}
	var got noCloudRead
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("nocloud_read.py output: %v\n%s", err, out)
	}
	return got
}

func TestSeedISO_CloudInitNoCloudDatasourceReadsIt(t *testing.T) {
	needTool(t, "xorriso")
	r := newRenderer(t, cloudinit.Config{})
	for role, n := range fixtureNodes(t) {
		t.Run(role, func(t *testing.T) {
			files, err := r.Files(n, fixtureSettings(), true)
			if err != nil {
				t.Fatal(err)
			}
			iso := writeSeed(t, files)
			dir := filepath.Join(t.TempDir(), "extracted")
			run(t, "xorriso", "-osirrox", "on", "-indev", iso, "-extract", "/", dir)
			got := readWithCloudInit(t, "seeddir", dir)
			if !got.Found || got.InstanceID != cloudinit.InstanceID(n) || got.Hostname != n.Name {
				t.Errorf("datasource found=%v instance-id=%q hostname=%q, want true %q %q",
					got.Found, got.InstanceID, got.Hostname, cloudinit.InstanceID(n), n.Name)
			}
			if got.UserData != string(files[cloudinit.FileUserData]) {
				t.Errorf("datasource user-data differs from the rendered one")
			}
			if got.NetworkVersion != 2 {
				t.Errorf("network-config version = %d, want 2", got.NetworkVersion)
			}
			subnets := got.Interfaces[n.PrimaryMAC().String()]
			if len(subnets) != 1 {
				t.Fatalf("interfaces = %v, want the primary MAC %s configured", got.Interfaces, n.PrimaryMAC())
			}
			if n.IP.IsValid() {
				s := subnets[0]
				if s["type"] != "static" || s["address"] != n.IP.Addr().String() || s["prefix"] != float64(n.IP.Bits()) {
					t.Errorf("static subnet = %v, want %s", s, n.IP)
				}
				routes, _ := json.Marshal(s["routes"])
				if !strings.Contains(string(routes), `"gateway":"`+n.Gateway.String()+`"`) {
					t.Errorf("routes = %s, want a default route via %s", routes, n.Gateway)
				}
			} else if subnets[0]["type"] != "dhcp4" {
				t.Errorf("subnet = %v, want dhcp4", subnets[0])
			}
		})
	}
}
