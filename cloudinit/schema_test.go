package cloudinit_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bootyard/bootyard/cloudinit"
	"github.com/bootyard/bootyard/node"
)

// TestUserData_PassesCloudInitSchema runs the real cloud-init's schema check over every
// rendered cloud-config: each role with join data, the no-join variant, vendor-data.
func TestUserData_PassesCloudInitSchema(t *testing.T) {
	ci := needTool(t, "cloud-init")
	r := newRenderer(t, cloudinit.Config{})
	s := fixtureSettings()
	docs := map[string][]byte{"vendor-data": r.VendorData()}
	for role, n := range fixtureNodes(t) {
		ud, err := r.UserData(n, s, true)
		if err != nil {
			t.Fatal(err)
		}
		docs[role] = ud
		n.State = node.StateDeleted
		if docs[role+" without join"], err = r.UserData(n, s, false); err != nil {
			t.Fatal(err)
		}
	}
	plain := s
	plain.ExtraCloudConfig, plain.SSHAuthorizedKeys, plain.InstallEnv = "", nil, nil
	ud, err := r.UserData(fixtureNodes(t)["worker"], plain, true)
	if err != nil {
		t.Fatal(err)
	}
	docs["worker, bare settings"] = ud
	// The check must be able to fail: a document cloud-init rejects.
	docs["broken (must fail)"] = []byte("#cloud-config\nruncmd: 5\nwrite_files: [{path: 1}]\n")

	dir := t.TempDir()
	for name, doc := range docs {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, strings.NewReplacer(" ", "_", ",", "", "(", "", ")", "").Replace(name))
			if err := os.WriteFile(path, doc, 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(ci, "schema", "--config-file", path).CombinedOutput()
			valid := err == nil && strings.Contains(string(out), "Valid cloud-config")
			if wantValid := !strings.Contains(name, "must fail"); valid != wantValid {
				t.Errorf("cloud-init schema: valid=%v, want %v: %v\n%s\n--- document\n%s", valid, wantValid, err, out, doc)
			}
		})
	}
}
