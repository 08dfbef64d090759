package cloudinit_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/bootyard/bootyard/cloudinit"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// userDataDoc is the part of user-data the assertions look into.
type userDataDoc struct {
	Hostname   string `json:"hostname"`
	WriteFiles []struct {
		Path        string `json:"path"`
		Permissions string `json:"permissions"`
		Content     string `json:"content"`
	} `json:"write_files"`
	Runcmd   []any    `json:"runcmd"`
	Packages []string `json:"packages"`
}

func parseUserData(t *testing.T, b []byte) userDataDoc {
	t.Helper()
	if !bytes.HasPrefix(b, []byte("#cloud-config\n")) {
		t.Fatalf("user-data does not start with #cloud-config:\n%s", b)
	}
	var doc userDataDoc
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("user-data is not YAML: %v\n%s", err, b)
	}
	return doc
}

func TestRender_GoldenFilesForEachRole(t *testing.T) {
	r := newRenderer(t, cloudinit.Config{})
	s := fixtureSettings()
	for role, n := range fixtureNodes(t) {
		t.Run(role, func(t *testing.T) {
			files, err := r.Files(n, s, true)
			if err != nil {
				t.Fatal(err)
			}
			for name, body := range files {
				golden(t, role+"."+name, body)
			}
			cmd, err := r.JoinCommand(n, s, false)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, role+".join-command", []byte(cmd))
		})
	}
}

func TestUserData_TokenOnlyInTheConfigFileNeverInRuncmd(t *testing.T) {
	r := newRenderer(t, cloudinit.Config{})
	s := fixtureSettings()
	wantRole := map[string]string{"cluster-init": "role: cluster-init", "server": "role: server", "worker": "role: agent"}
	for role, n := range fixtureNodes(t) {
		t.Run(role, func(t *testing.T) {
			ud, err := r.UserData(n, s, true)
			if err != nil {
				t.Fatal(err)
			}
			doc := parseUserData(t, ud)
			if doc.Hostname != n.Name {
				t.Errorf("hostname = %q, want the node name %q (the operator's extra config must not win)", doc.Hostname, n.Name)
			}
			runcmd, _ := yaml.Marshal(doc.Runcmd)
			if strings.Contains(string(runcmd), testToken) {
				t.Errorf("token in runcmd:\n%s", runcmd)
			}
			holders := 0
			for _, f := range doc.WriteFiles {
				if !strings.Contains(f.Content, testToken) {
					continue
				}
				holders++
				if f.Path != "/etc/llmos/config.yaml" || f.Permissions != "0600" {
					t.Errorf("token in %s (mode %s), want only /etc/llmos/config.yaml mode 0600", f.Path, f.Permissions)
				}
				for _, want := range []string{wantRole[role], "nodeName: " + n.Name, "token: " + testToken} {
					if !strings.Contains(f.Content, want) {
						t.Errorf("config lacks %q:\n%s", want, f.Content)
					}
				}
				if strings.Contains(f.Content, "llmos.ai/managed") {
					t.Errorf("config lists llmos.ai/managed; bootstrap adds it itself")
				}
				if role == "cluster-init" && strings.Contains("\n"+f.Content, "\nserver:") {
					t.Errorf("cluster-init config names a server:\n%s", f.Content)
				}
			}
			if holders != 1 {
				t.Errorf("token appears in %d write_files entries, want exactly 1", holders)
			}
			if strings.Count(string(ud), testToken) != 1 {
				t.Errorf("token appears %d times in user-data, want 1", strings.Count(string(ud), testToken))
			}
			if len(doc.Packages) == 0 || !strings.Contains(string(runcmd), "iscsid") {
				t.Errorf("operator's extra cloud-config (packages, runcmd) not merged in:\n%s", ud)
			}
		})
	}
}

func TestUserData_WithoutJoinCarriesNoJoinData(t *testing.T) {
	r := newRenderer(t, cloudinit.Config{})
	n := fixtureNodes(t)["server"]
	ud, err := r.UserData(n, fixtureSettings(), false)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "nojoin.user-data", ud)
	for _, forbidden := range []string{testToken, "/etc/llmos", "llmos.service", "get-llmos", "join-turn", "10.20.0.11:6443"} {
		if bytes.Contains(ud, []byte(forbidden)) {
			t.Errorf("no-join user-data contains %q", forbidden)
		}
	}
	doc := parseUserData(t, ud)
	if doc.Hostname != n.Name || !bytes.Contains(ud, []byte("ssh-ed25519")) || !bytes.Contains(ud, []byte("phone-home")) {
		t.Errorf("no-join user-data must keep hostname, SSH keys and the phone-home:\n%s", ud)
	}
}

func TestJoinCommand_TokenAndInstallEnvMaskedUnlessRevealed(t *testing.T) {
	r := newRenderer(t, cloudinit.Config{})
	n := fixtureNodes(t)["worker"]
	tests := []struct {
		reveal    bool
		wantToken bool
	}{{false, false}, {true, true}}
	for _, tt := range tests {
		cmd, err := r.JoinCommand(n, fixtureSettings(), tt.reveal)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(cmd, testToken); got != tt.wantToken {
			t.Errorf("reveal=%v: token shown = %v, want %v:\n%s", tt.reveal, got, tt.wantToken, cmd)
		}
		// installEnv values (proxy URLs with passwords) are secrets like the token.
		if got := strings.Contains(cmd, "http://proxy.lab:3128"); got != tt.wantToken {
			t.Errorf("reveal=%v: installEnv value shown = %v, want %v:\n%s", tt.reveal, got, tt.wantToken, cmd)
		}
		if !strings.Contains(cmd, "sh -s -\n") || strings.Contains(cmd, "--") {
			t.Errorf("reveal=%v: installer must run with no flags:\n%s", tt.reveal, cmd)
		}
	}
}

func TestRender_RefusesJoinWithoutWhatLLMOSNeeds(t *testing.T) {
	r := newRenderer(t, cloudinit.Config{})
	nodes := fixtureNodes(t)
	noToken := fixtureSettings()
	noToken.Token = ""
	noServer := fixtureSettings()
	noServer.ServerURL = ""
	badExtra := fixtureSettings()
	badExtra.ExtraCloudConfig = "runcmd: [unclosed"
	for _, tt := range []struct {
		name string
		set  func() error
	}{
		{"worker without a token", func() error { _, err := r.UserData(nodes["worker"], noToken, true); return err }},
		{"worker without a server URL", func() error { _, err := r.UserData(nodes["worker"], noServer, true); return err }},
		{"server without a server URL", func() error { _, err := r.UserData(nodes["server"], noServer, true); return err }},
		{"invalid extra cloud-config", func() error { _, err := r.UserData(nodes["server"], badExtra, true); return err }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.set(); err == nil {
				t.Error("rendered anyway; want an error")
			}
		})
	}
	// The cluster-init node starts the cluster, so it needs no server URL.
	if _, err := r.UserData(nodes["cluster-init"], noServer, true); err != nil {
		t.Errorf("cluster-init without a server URL: %v", err)
	}
}
