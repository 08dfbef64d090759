package store

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/bootyard/bootyard/node"
)

func TestClusterSettings_AreZeroUntilSet(t *testing.T) {
	s := openTestStore(t, tempStorePath(t))
	c, err := s.ClusterSettings(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, node.ClusterSettings{}) {
		t.Fatalf("settings of a new store = %+v, want zero", c)
	}
	closeAndCheck(t, s)
}

func TestClusterSettings_RoundTripIncludingTheToken(t *testing.T) {
	const token = "K10abc::server:0123456789abcdef"
	ctx := context.Background()
	path := tempStorePath(t)
	s := openTestStore(t, path)
	want := node.ClusterSettings{
		ServerURL:         "https://10.20.0.31:9345",
		Token:             node.Secret(token),
		InstallURL:        "https://mirror.lab.example/install.sh",
		InstallEnv:        map[string]string{"INSTALL_LLMOS_VERSION": "v0.5.0", "HTTPS_PROXY": "http://proxy:3128"},
		ExtraCloudConfig:  "runcmd:\n  - echo hi\n",
		SSHAuthorizedKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA admin@lab"},
		DefaultImage:      "llmos-v0.5.0",
		WipeOverwrite:     true,
	}
	got, err := s.UpdateClusterSettings(ctx, func(c *node.ClusterSettings) error {
		*c = want
		return nil
	})
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("UpdateClusterSettings = %+v, %v", got, err)
	}
	// A later partial update keeps the token it does not touch.
	if _, err := s.UpdateClusterSettings(ctx, func(c *node.ClusterSettings) error {
		c.DefaultImage = "llmos-v0.6.0"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want.DefaultImage = "llmos-v0.6.0"
	closeAndCheck(t, s)

	raw := rawSetting(t, path, "cluster")
	if !strings.Contains(raw, token) || strings.Contains(raw, "[redacted]") {
		t.Fatalf("stored settings %s: want the real token, not [redacted]", raw)
	}

	s = openTestStore(t, path)
	got, err = s.ClusterSettings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) || got.Token.Reveal() != token {
		t.Fatalf("after reopen:\n got %+v (token %q)\nwant %+v", got, got.Token.Reveal(), want)
	}
	closeAndCheck(t, s)
}

func TestUpdateClusterSettings_RefusalsWriteNothing(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name    string
		fn      func(c *node.ClusterSettings) error
		wantErr error
	}{
		{"server URL on port 8443", func(c *node.ClusterSettings) error {
			c.ServerURL, c.Token = "https://10.20.0.31:8443", "new-token"
			return nil
		}, node.ErrInvalid},
		{"server URL over http", func(c *node.ClusterSettings) error {
			c.ServerURL = "http://10.20.0.31:6443"
			return nil
		}, node.ErrInvalid},
		{"token on two lines", func(c *node.ClusterSettings) error {
			c.Token = "a\nb"
			return nil
		}, node.ErrInvalid},
		{"the update func fails", func(c *node.ClusterSettings) error {
			c.Token = "new-token"
			return errBoom
		}, errBoom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := openTestStore(t, tempStorePath(t))
			before, err := s.UpdateClusterSettings(ctx, func(c *node.ClusterSettings) error {
				c.ServerURL, c.Token = "https://10.20.0.31:6443", "old-token"
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.UpdateClusterSettings(ctx, tt.fn); !errors.Is(err, tt.wantErr) {
				t.Fatalf("UpdateClusterSettings = %v, want %v", err, tt.wantErr)
			}
			after, err := s.ClusterSettings(ctx)
			if err != nil || !reflect.DeepEqual(after, before) || after.Token.Reveal() != "old-token" {
				t.Fatalf("after the refused update: %+v, %v; want %+v", after, err, before)
			}
			closeAndCheck(t, s)
		})
	}
}

// rawSetting reads a settings value of a closed store file as stored.
func rawSetting(t *testing.T, path, key string) string {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v string
	if err := db.View(func(tx *bolt.Tx) error {
		v = string(tx.Bucket(bucketSettings).Get([]byte(key)))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if v == "" {
		t.Fatalf("no setting %q stored", key)
	}
	return v
}
