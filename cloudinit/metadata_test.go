package cloudinit_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bootyard/bootyard/cloudinit"
)

// TestMetaData_HostnamesThatLookLikeNumbersOrBooleansStayStrings loads the meta-data with
// cloud-init's own YAML loader (util.load_yaml, YAML 1.1, where on and yes are booleans)
// and then reads the whole seed with cloud-init's NoCloud datasource, which calls
// get_hostname: an unquoted 123 or on made that raise and NoCloud not load at all.
func TestMetaData_HostnamesThatLookLikeNumbersOrBooleansStayStrings(t *testing.T) {
	r := newRenderer(t, cloudinit.Config{})
	for _, name := range []string{"123", "01", "on", "yes", "no", "true", "null", "1e3", "0x1f", "cp-1"} {
		t.Run(name, func(t *testing.T) {
			n := fixtureNodes(t)["worker"]
			n.Name = name
			files, err := r.Files(n, fixtureSettings(), true)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			for file, body := range files {
				if err := os.WriteFile(filepath.Join(dir, file), body, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := os.Stat("/usr/lib/python3/dist-packages/cloudinit/util.py"); err != nil {
				t.Skipf("Debian package cloud-init not installed (make test installs it): %v", err)
			}
			const check = `import sys
from cloudinit import util
md = util.load_yaml(open(sys.argv[1]).read())
print(type(md["local-hostname"]).__name__, md["local-hostname"], type(md["instance-id"]).__name__)`
			out, err := exec.Command("/usr/bin/python3", "-c", check, filepath.Join(dir, cloudinit.FileMetaData)).CombinedOutput()
			if err != nil {
				t.Fatalf("load meta-data: %v\n%s", err, out)
			}
			if got, want := strings.TrimSpace(string(out)), "str "+name+" str"; got != want {
				t.Fatalf("cloud-init loads local-hostname as %q, want %q; meta-data:\n%s", got, want, files[cloudinit.FileMetaData])
			}
			got := readWithCloudInit(t, "seeddir", dir)
			if !got.Found || got.Hostname != name || got.InstanceID != cloudinit.InstanceID(n) {
				t.Fatalf("NoCloud found=%v hostname=%q instance-id=%q, want true %q %q",
					got.Found, got.Hostname, got.InstanceID, name, cloudinit.InstanceID(n))
			}
		})
	}
}
