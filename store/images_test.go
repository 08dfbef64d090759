package store

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bootyard/bootyard/node"
)

func openImageStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "bootyard.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

const testSum = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

func diskImage(name string) Image {
	return Image{Name: name, Kind: ImageDisk, File: "/srv/images/" + name + ".raw", Size: 4, SHA256: testSum, Format: FormatRaw}
}

func TestImages_StoreWithNoImagesListsNothing(t *testing.T) {
	s := openImageStore(t)
	imgs, err := s.Images(context.Background())
	if err != nil || len(imgs) != 0 {
		t.Fatalf("Images = %v, %v; want none", imgs, err)
	}
	if _, err := s.Image(context.Background(), "debian"); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("Image(debian) err = %v, want ErrNotFound", err)
	}
}

func TestAddImage_RefusesInvalidEntries(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Image)
	}{
		{"name is not a DNS label", func(i *Image) { i.Name = "Debian_12" }},
		{"unknown kind", func(i *Image) { i.Kind = "iso" }},
		{"disk image with neither file nor url", func(i *Image) { i.File = "" }},
		{"disk image with both file and url", func(i *Image) { i.URL = "http://mirror/x.raw" }},
		{"relative file path", func(i *Image) { i.File = "images/x.raw" }},
		{"short checksum", func(i *Image) { i.SHA256 = "abc" }},
		{"upper-case checksum", func(i *Image) { i.SHA256 = strings.ToUpper(testSum) }},
		{"unknown format", func(i *Image) { i.Format = "qcow2" }},
		{"negative size", func(i *Image) { i.Size = -1 }},
		{"installer without initrd", func(i *Image) { *i = Image{Name: "ubuntu", Kind: ImageInstaller, Kernel: "/k"} }},
		{"installer with a file", func(i *Image) {
			*i = Image{Name: "ubuntu", Kind: ImageInstaller, Kernel: "/k", Initrd: "/i", File: "/x"}
		}},
		{"multi-line cmdline", func(i *Image) {
			*i = Image{Name: "ubuntu", Kind: ImageInstaller, Kernel: "/k", Initrd: "/i", Cmdline: "a\nb"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openImageStore(t)
			img := diskImage("debian")
			tt.mutate(&img)
			if _, err := s.AddImage(context.Background(), img, false); !errors.Is(err, node.ErrInvalid) {
				t.Fatalf("AddImage err = %v, want ErrInvalid", err)
			}
			if imgs, _ := s.Images(context.Background()); len(imgs) != 0 {
				t.Fatalf("invalid image was stored: %v", imgs)
			}
		})
	}
}

func TestAddImage_FirstImageBecomesTheDefaultAndDefaultFlagMovesIt(t *testing.T) {
	ctx := context.Background()
	s := openImageStore(t)
	if _, err := s.UpdateClusterSettings(ctx, func(c *node.ClusterSettings) error {
		c.Token = "K10secret::server:abc"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		add         string
		makeDefault bool
		wantDefault string
	}{
		{"debian", false, "debian"}, // no default yet: the first image is it
		{"ubuntu", false, "debian"}, // a second image does not steal it
		{"alpine", true, "alpine"},  // --default does
		{"fedora", false, "alpine"},
	}
	for _, st := range steps {
		img, err := s.AddImage(ctx, diskImage(st.add), st.makeDefault)
		if err != nil {
			t.Fatalf("AddImage(%s): %v", st.add, err)
		}
		if img.Default != (st.wantDefault == st.add) {
			t.Errorf("AddImage(%s).Default = %v", st.add, img.Default)
		}
		c, err := s.ClusterSettings(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if c.DefaultImage != st.wantDefault {
			t.Errorf("after adding %s: default = %q, want %q", st.add, c.DefaultImage, st.wantDefault)
		}
		if c.Token.Reveal() != "K10secret::server:abc" {
			t.Fatalf("changing the default lost the join token: %q", c.Token.Reveal())
		}
	}
	imgs, err := s.Images(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names, defaults []string
	for _, i := range imgs {
		names = append(names, i.Name)
		if i.Default {
			defaults = append(defaults, i.Name)
		}
	}
	if !slices.Equal(names, []string{"alpine", "debian", "fedora", "ubuntu"}) || !slices.Equal(defaults, []string{"alpine"}) {
		t.Errorf("Images = %v (default %v), want sorted names with alpine as the only default", names, defaults)
	}
}

func TestAddImage_NameTakenIsAConflictAndKeepsTheOriginal(t *testing.T) {
	ctx := context.Background()
	s := openImageStore(t)
	if _, err := s.AddImage(ctx, diskImage("debian"), false); err != nil {
		t.Fatal(err)
	}
	other := diskImage("debian")
	other.File = "/elsewhere/debian.raw"
	if _, err := s.AddImage(ctx, other, false); !errors.Is(err, node.ErrConflict) {
		t.Fatalf("second AddImage err = %v, want ErrConflict", err)
	}
	got, err := s.Image(ctx, "debian")
	if err != nil || got.File != "/srv/images/debian.raw" {
		t.Fatalf("Image(debian) = %+v, %v; want the original file", got, err)
	}
}

func TestRemoveImage_RefusesWhileLiveNodesUseItAndNamesThem(t *testing.T) {
	ctx := context.Background()
	s := openImageStore(t)
	for _, name := range []string{"debian", "ubuntu"} {
		if _, err := s.AddImage(ctx, diskImage(name), false); err != nil { // debian is the default
			t.Fatal(err)
		}
	}
	imp := func(name string, mac byte, image string) {
		t.Helper()
		_, err := s.ImportNode(ctx, node.Node{Name: name, MACs: []node.MAC{{0x52, 0x54, 0, 0, 0, mac}},
			Role: node.RoleWorker, Image: image}, "test")
		if err != nil {
			t.Fatal(err)
		}
	}
	imp("w-explicit", 1, "ubuntu")
	imp("w-default", 2, "") // uses debian through the default
	imp("w-gone", 3, "ubuntu")
	if _, err := s.UpdateNode(ctx, "w-gone", func(n *node.Node) ([]node.Event, error) {
		var evs []node.Event
		for _, to := range []node.State{node.StateDeleting, node.StateDeleted} {
			ev, err := n.Transition(to, "test", "test", s.now())
			if err != nil {
				return nil, err
			}
			evs = append(evs, ev)
		}
		return evs, nil
	}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		image     string
		wantNodes []string
	}{
		{"ubuntu", []string{"w-explicit"}}, // w-gone is deleted: it does not count
		{"debian", []string{"w-default"}},
	}
	for _, tt := range tests {
		err := s.RemoveImage(ctx, tt.image)
		var inUse *ImageInUseError
		if !errors.As(err, &inUse) || !errors.Is(err, node.ErrConflict) {
			t.Fatalf("RemoveImage(%s) err = %v, want an ImageInUseError conflict", tt.image, err)
		}
		if !slices.Equal(inUse.Nodes, tt.wantNodes) {
			t.Errorf("RemoveImage(%s) users = %v, want %v", tt.image, inUse.Nodes, tt.wantNodes)
		}
		for _, n := range tt.wantNodes {
			if !strings.Contains(err.Error(), n) {
				t.Errorf("error %q does not name node %s", err, n)
			}
		}
		if _, err := s.Image(ctx, tt.image); err != nil {
			t.Errorf("refused removal still removed %s: %v", tt.image, err)
		}
	}
}

func TestRemoveImage_RemovingTheDefaultClearsIt(t *testing.T) {
	ctx := context.Background()
	s := openImageStore(t)
	if _, err := s.AddImage(ctx, diskImage("debian"), true); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveImage(ctx, "debian"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Image(ctx, "debian"); !errors.Is(err, node.ErrNotFound) {
		t.Errorf("Image after removal err = %v, want ErrNotFound", err)
	}
	c, err := s.ClusterSettings(ctx)
	if err != nil || c.DefaultImage != "" {
		t.Errorf("default = %q, %v; want cleared", c.DefaultImage, err)
	}
	if err := s.RemoveImage(ctx, "debian"); !errors.Is(err, node.ErrNotFound) {
		t.Errorf("second RemoveImage err = %v, want ErrNotFound", err)
	}
}
