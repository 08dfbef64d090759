package cloudinit_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/bootyard/bootyard/cloudinit"
	"github.com/bootyard/bootyard/node"
)

func TestCache_RendersAgainWhenTheNodeOrSettingsChange(t *testing.T) {
	c := cloudinit.NewCache(newRenderer(t, cloudinit.Config{}))
	base, s := fixtureNodes(t)["server"], fixtureSettings()
	first, err := c.Files(base, s, true)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		change  func(n *node.Node, s *node.ClusterSettings, join *bool)
		want    string // in the new user-data or meta-data
		changed bool
	}{
		{"nothing changed: the same files", func(*node.Node, *node.ClusterSettings, *bool) {}, "", false},
		{"new generation: new instance-id", func(n *node.Node, _ *node.ClusterSettings, _ *bool) {
			n.Generation++
			n.UpdatedAt = n.UpdatedAt.Add(time.Second)
		}, "bootyard-cp-2-4", true},
		{"node record updated: its new labels", func(n *node.Node, _ *node.ClusterSettings, _ *bool) {
			n.Labels = map[string]string{"rack": "c"}
			n.UpdatedAt = n.UpdatedAt.Add(time.Second)
		}, "rack=c", true},
		{"settings changed: the new server", func(_ *node.Node, s *node.ClusterSettings, _ *bool) {
			s.ServerURL = "https://10.20.0.99:9345"
		}, "https://10.20.0.99:9345", true},
		{"installer environment changed", func(_ *node.Node, s *node.ClusterSettings, _ *bool) {
			s.InstallEnv = map[string]string{"INSTALL_LLMOS_VERSION": "v0.4.0"}
		}, "v0.4.0", true},
		{"join withdrawn: no token", func(_ *node.Node, _ *node.ClusterSettings, join *bool) { *join = false }, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, s2, join := base, fixtureSettings(), true
			tt.change(&n, &s2, &join)
			got, err := c.Files(n, s2, join)
			if err != nil {
				t.Fatal(err)
			}
			same := bytes.Equal(got[cloudinit.FileUserData], first[cloudinit.FileUserData]) &&
				bytes.Equal(got[cloudinit.FileMetaData], first[cloudinit.FileMetaData])
			if same == tt.changed {
				t.Errorf("files changed = %v, want %v", !same, tt.changed)
			}
			all := string(got[cloudinit.FileUserData]) + string(got[cloudinit.FileMetaData])
			if tt.want != "" && !bytes.Contains([]byte(all), []byte(tt.want)) {
				t.Errorf("files lack %q", tt.want)
			}
			if !join && bytes.Contains(got[cloudinit.FileUserData], []byte(testToken)) {
				t.Error("cached files kept the token after join was withdrawn")
			}
			// Put the cache back on the base entry for the next case.
			if _, err := c.Files(base, s, true); err != nil {
				t.Fatal(err)
			}
		})
	}
	// The caller's map changed in place after caching: the cache kept its own copy, so
	// it notices.
	s.InstallEnv["INSTALL_LLMOS_VERSION"] = "v0.5.0"
	got, err := c.Files(base, s, true)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(got[cloudinit.FileUserData], []byte("v0.5.0")) {
		t.Error("an in-place change of the installer environment was served from the stale cache")
	}
}
