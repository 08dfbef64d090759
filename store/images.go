package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/bootyard/bootyard/node"
)

// bucketImages holds the image catalog: name → image JSON. It is created by the first
// write, so a store file that never had an image has none; readers treat it as empty.
var bucketImages = []byte("images")

// ImageKind says how an image reaches a machine's disk.
type ImageKind string

const (
	// ImageDisk is a whole-disk image the installer agent streams to the target disk.
	ImageDisk ImageKind = "disk"
	// ImageInstaller is a distribution installer (kernel + initrd + command line) that
	// iPXE boots directly, pointing it at the node's NoCloud URL.
	ImageInstaller ImageKind = "installer"
)

// ImageFormat is how a disk image's bytes are packed.
type ImageFormat string

const (
	FormatRaw  ImageFormat = "raw"
	FormatGzip ImageFormat = "gzip"
	FormatZstd ImageFormat = "zstd"
)

// Image is one catalog entry. Exactly one of File and URL names a disk image's bytes;
// an installer image names its Kernel and Initrd (each a file path or a URL) instead.
type Image struct {
	Name string    `json:"name"`
	Kind ImageKind `json:"kind"`
	// File is an absolute path on the Bootyard host; Bootyard serves it at /images/<name>.
	File string `json:"file,omitempty"`
	// URL is where machines download the image themselves; Bootyard never fetches it.
	URL    string      `json:"url,omitempty"`
	Size   int64       `json:"size"`             // bytes as stored (compressed size); 0 = unknown (URL)
	SHA256 string      `json:"sha256,omitempty"` // lower-case hex of the bytes as stored
	Format ImageFormat `json:"format,omitempty"`
	// ModTime is File's modification time when it was added: serving compares it, so a
	// file replaced behind Bootyard's back is refused instead of failing a checksum.
	ModTime time.Time `json:"modTime,omitzero"`
	Kernel  string    `json:"kernel,omitempty"`
	Initrd  string    `json:"initrd,omitempty"`
	Cmdline string    `json:"cmdline,omitempty"`
	// RootDiskHints are the install disk's default for nodes with none of their own.
	RootDiskHints node.RootDiskHints `json:"rootDiskHints,omitzero"`
	AddedAt       time.Time          `json:"addedAt"`
	// Default is not stored: reads fill it in from ClusterSettings.DefaultImage.
	Default bool `json:"default"`
}

// Validate checks the invariants every stored image satisfies. Deeper checks (the file
// exists, the checksum matches) belong to the images package, which reads files.
func (img *Image) Validate() error {
	if err := node.ValidateName(img.Name); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	switch img.Kind {
	case ImageDisk:
		if (img.File == "") == (img.URL == "") {
			return fmt.Errorf("image %s: %w: a disk image needs exactly one of file or url", img.Name, node.ErrInvalid)
		}
		if img.File != "" && !filepath.IsAbs(img.File) {
			return fmt.Errorf("image %s: %w: file %q must be an absolute path", img.Name, node.ErrInvalid, img.File)
		}
		if !isSHA256Hex(img.SHA256) {
			return fmt.Errorf("image %s: %w: sha256 must be 64 lower-case hex digits", img.Name, node.ErrInvalid)
		}
		switch img.Format {
		case FormatRaw, FormatGzip, FormatZstd:
		default:
			return fmt.Errorf("image %s: %w: format %q must be raw, gzip or zstd", img.Name, node.ErrInvalid, img.Format)
		}
	case ImageInstaller:
		if img.Kernel == "" || img.Initrd == "" {
			return fmt.Errorf("image %s: %w: an installer image needs a kernel and an initrd", img.Name, node.ErrInvalid)
		}
		if img.File != "" || img.URL != "" {
			return fmt.Errorf("image %s: %w: an installer image has a kernel and initrd, not a file or url", img.Name, node.ErrInvalid)
		}
	default:
		return fmt.Errorf("image %s: %w: kind %q must be disk or installer", img.Name, node.ErrInvalid, img.Kind)
	}
	if img.Size < 0 {
		return fmt.Errorf("image %s: %w: negative size", img.Name, node.ErrInvalid)
	}
	if strings.ContainsAny(img.Cmdline, "\r\n") {
		return fmt.Errorf("image %s: %w: cmdline must be one line", img.Name, node.ErrInvalid)
	}
	return nil
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ImageInUseError refuses to remove an image that live nodes still install from.
type ImageInUseError struct {
	Image string
	Nodes []string // sorted
}

func (e *ImageInUseError) Error() string {
	return fmt.Sprintf("image %s is used by node(s) %s: give them another image (or delete them) first: %v",
		e.Image, strings.Join(e.Nodes, ", "), node.ErrConflict)
}

// Unwrap makes the refusal a conflict for the web layer's one status mapping.
func (e *ImageInUseError) Unwrap() error { return node.ErrConflict }

// AddImage stores a new catalog entry; a name already taken is ErrConflict. When
// makeDefault is set, or no default exists yet, the image becomes the cluster default
// in the same transaction: a fresh install's first image is what nodes get.
func (s *Store) AddImage(ctx context.Context, img Image, makeDefault bool) (Image, error) {
	if err := ctxErr(ctx); err != nil {
		return Image{}, err
	}
	if err := img.Validate(); err != nil {
		return Image{}, err
	}
	if img.AddedAt.IsZero() {
		img.AddedAt = s.now()
	}
	img.Default = false
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketImages)
		if err != nil {
			return fmt.Errorf("create bucket %s: %w", bucketImages, err)
		}
		if b.Get([]byte(img.Name)) != nil {
			return fmt.Errorf("image %s already exists (remove it first to replace it): %w", img.Name, node.ErrConflict)
		}
		v, err := json.Marshal(img)
		if err != nil {
			return fmt.Errorf("encode image %s: %w", img.Name, err)
		}
		if err := b.Put([]byte(img.Name), v); err != nil {
			return err
		}
		c, err := getClusterSettings(tx)
		if err != nil {
			return err
		}
		if makeDefault || c.DefaultImage == "" {
			c.DefaultImage = img.Name
			if err := putClusterSettings(tx, c); err != nil {
				return err
			}
		}
		img.Default = c.DefaultImage == img.Name
		return nil
	})
	if err != nil {
		return Image{}, err
	}
	return img, nil
}

// Image returns the named catalog entry (ErrNotFound if none).
func (s *Store) Image(ctx context.Context, name string) (Image, error) {
	if err := ctxErr(ctx); err != nil {
		return Image{}, err
	}
	var out Image
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		out, err = getImage(tx, name)
		if err != nil {
			return err
		}
		c, err := getClusterSettings(tx)
		out.Default = c.DefaultImage == out.Name
		return err
	})
	return out, err
}

// Images returns the catalog, sorted by name.
func (s *Store) Images(ctx context.Context) ([]Image, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	var out []Image
	err := s.db.View(func(tx *bolt.Tx) error {
		c, err := getClusterSettings(tx)
		if err != nil {
			return err
		}
		b := tx.Bucket(bucketImages)
		if b == nil {
			return nil
		}
		// bbolt iterates keys in byte order, which is name order.
		return b.ForEach(func(k, v []byte) error {
			var img Image
			if err := json.Unmarshal(v, &img); err != nil {
				return fmt.Errorf("decode image %s: %w", k, err)
			}
			img.Default = c.DefaultImage == img.Name
			out = append(out, img)
			return nil
		})
	})
	return out, err
}

// RemoveImage deletes a catalog entry unless a node that may still be installed or
// reinstalled uses it (by name, or through the default): that is an *ImageInUseError
// listing them. Removing the default image clears the default. Nothing on disk is
// touched: the file belongs to the operator.
func (s *Store) RemoveImage(ctx context.Context, name string) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if _, err := getImage(tx, name); err != nil {
			return err
		}
		c, err := getClusterSettings(tx)
		if err != nil {
			return err
		}
		users := imageUsers(tx, name)
		if c.DefaultImage == name {
			users = append(users, imageUsers(tx, "")...)
		}
		if len(users) > 0 {
			slices.Sort(users)
			return &ImageInUseError{Image: name, Nodes: users}
		}
		if err := tx.Bucket(bucketImages).Delete([]byte(name)); err != nil {
			return err
		}
		if c.DefaultImage == name {
			c.DefaultImage = ""
			return putClusterSettings(tx, c)
		}
		return nil
	})
}

// imageUsers lists the nodes that name image (empty: the cluster default) and may still be
// installed or reinstalled with it, from the image index. A discovered node has chosen
// nothing yet; a deleted one is done with its image until it is imported again, which
// names an image afresh.
func imageUsers(tx *bolt.Tx, image string) []string {
	var users []string
	prefix := joinKey(image, "")
	c := tx.Bucket(bucketImageIndex).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if st := node.State(v); st != node.StateDiscovered && st != node.StateDeleted {
			users = append(users, string(k[len(prefix):]))
		}
	}
	return users
}

func getImage(tx *bolt.Tx, name string) (Image, error) {
	b := tx.Bucket(bucketImages)
	var v []byte
	if b != nil {
		v = b.Get([]byte(name))
	}
	if v == nil {
		return Image{}, fmt.Errorf("image %q: %w", name, node.ErrNotFound)
	}
	var img Image
	if err := json.Unmarshal(v, &img); err != nil {
		return Image{}, fmt.Errorf("decode image %s: %w", name, err)
	}
	return img, nil
}

// putClusterSettings writes the settings record in the caller's transaction, in the
// same form UpdateClusterSettings writes it.
func putClusterSettings(tx *bolt.Tx, c node.ClusterSettings) error {
	v, err := json.Marshal(clusterRecord{ClusterSettings: c, Token: c.Token.Reveal()})
	if err != nil {
		return fmt.Errorf("encode cluster settings: %w", err)
	}
	return tx.Bucket(bucketSettings).Put(keyCluster, v)
}
