package images

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// AgentKernel and AgentInitramfs are the installer agent's boot files, under
// <data>/agent/ and served at /agent/<name>.
const (
	AgentKernel    = "vmlinuz"
	AgentInitramfs = "initramfs.gz"
)

// ImageLookup is what file serving needs from the catalog.
type ImageLookup interface {
	Image(ctx context.Context, name string) (store.Image, error)
}

// FileServerConfig configures a FileServer.
type FileServerConfig struct {
	Images ImageLookup
	// ImagesDir is the images directory (the catalog's Dir): no image file outside it
	// is served, whatever the catalog says (symlinks resolved at each request).
	ImagesDir string
	// AgentDir holds AgentKernel and AgentInitramfs (<data>/agent).
	AgentDir string
	Logger   *slog.Logger
}

// FileServer serves image and agent files: GET/HEAD /images/<name> (a disk image's
// file), /images/<name>/kernel and /images/<name>/initrd (an installer image's files),
// /agent/vmlinuz and /agent/initramfs.gz. Every file goes through http.ServeContent on
// an *os.File, so Range, If-Range and ETag work and the bytes stream through the
// ResponseWriter's copy: nothing is read into memory whatever the size.
type FileServer struct {
	images    ImageLookup
	imagesDir string
	agentDir  string
	log       *slog.Logger
}

// NewFileServer builds the file server.
func NewFileServer(cfg FileServerConfig) *FileServer {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if real, err := filepath.EvalSymlinks(cfg.ImagesDir); err == nil && cfg.ImagesDir != "" {
		cfg.ImagesDir = real
	}
	return &FileServer{images: cfg.Images, imagesDir: cfg.ImagesDir, agentDir: cfg.AgentDir, log: cfg.Logger.With(slog.String("component", "files"))}
}

// errFileChanged: the file behind a catalog entry is not the one that was measured.
var errFileChanged = errors.New("file changed since it was added")

func (s *FileServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	path, etag, err := s.resolve(r.Context(), r.URL.Path)
	if err != nil {
		s.refuse(w, r, err)
		return
	}
	f, err := os.Open(path)
	if err != nil {
		s.refuse(w, r, fmt.Errorf("%s: %w", r.URL.Path, notFoundIfMissing(err)))
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		s.refuse(w, r, fmt.Errorf("%s: %w: not a regular file", r.URL.Path, node.ErrNotFound))
		return
	}
	if etag.check != nil {
		if err := etag.check(fi); err != nil {
			s.refuse(w, r, err)
			return
		}
	}
	tag := etag.value
	if tag == "" {
		// nginx's validator: modification time and size. Strong enough for files that
		// are replaced, not edited in place, which is how kernels and initrds change.
		tag = `"` + strconv.FormatInt(fi.ModTime().UnixNano(), 16) + "-" + strconv.FormatInt(fi.Size(), 16) + `"`
	}
	h := w.Header()
	h.Set("ETag", tag)
	// Set, so ServeContent does not read the first 512 bytes to sniff a type.
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Accept-Ranges", "bytes")
	http.ServeContent(w, r, "", fi.ModTime(), f)
}

// validator is how a file is identified to caches: a fixed value (a disk image's
// checksum) and a check that the file is still the one the value describes.
type validator struct {
	value string
	check func(os.FileInfo) error
}

// resolve maps a URL path to a file on disk. Only catalog names and the two agent file
// names resolve: no path from the request ever reaches the file system.
func (s *FileServer) resolve(ctx context.Context, urlPath string) (string, validator, error) {
	if name, ok := strings.CutPrefix(urlPath, "/agent/"); ok {
		if (name != AgentKernel && name != AgentInitramfs) || s.agentDir == "" {
			return "", validator{}, fmt.Errorf("%s: %w", urlPath, node.ErrNotFound)
		}
		return filepath.Join(s.agentDir, name), validator{}, nil
	}
	rest, ok := strings.CutPrefix(urlPath, "/images/")
	if !ok || s.images == nil {
		return "", validator{}, fmt.Errorf("%s: %w", urlPath, node.ErrNotFound)
	}
	name, part, _ := strings.Cut(rest, "/")
	img, err := s.images.Image(ctx, name)
	if err != nil {
		return "", validator{}, err
	}
	path, v, err := imageFile(img, part)
	if err != nil {
		return "", validator{}, fmt.Errorf("%s: %w", urlPath, err)
	}
	// The catalog checked this when the image was added; checked again here because an
	// older catalog, or a symlink changed since, must not make Bootyard serve its store.
	real, err := insideDir(s.imagesDir, path)
	if err != nil {
		return "", validator{}, fmt.Errorf("image %s: %w: remove it and add it again from the images directory", img.Name, err)
	}
	return real, v, nil
}

// imageFile is the file behind part ("" for a disk image, kernel or initrd) of img.
func imageFile(img store.Image, part string) (string, validator, error) {
	switch {
	case part == "" && img.Kind == store.ImageDisk && img.File != "":
		return img.File, validator{value: `"` + img.SHA256 + `"`, check: func(fi os.FileInfo) error {
			if fi.Size() != img.Size || (!img.ModTime.IsZero() && !fi.ModTime().Equal(img.ModTime)) {
				return fmt.Errorf("image %s: %s: %w (size %d, modified %s; the catalog has size %d, modified %s): remove and add the image again: %w",
					img.Name, img.File, errFileChanged, fi.Size(), fi.ModTime().UTC().Format(time.RFC3339), img.Size,
					img.ModTime.Format(time.RFC3339), node.ErrConflict)
			}
			return nil
		}}, nil
	case part == "kernel" && img.Kind == store.ImageInstaller && filepath.IsAbs(img.Kernel):
		return img.Kernel, validator{}, nil
	case part == "initrd" && img.Kind == store.ImageInstaller && filepath.IsAbs(img.Initrd):
		return img.Initrd, validator{}, nil
	}
	return "", validator{}, fmt.Errorf("%w: image %s has no file Bootyard serves there (a url image is fetched from its url)", node.ErrNotFound, img.Name)
}

func notFoundIfMissing(err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %v", node.ErrNotFound, err)
	}
	return err
}

func (s *FileServer) refuse(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, node.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, node.ErrConflict):
		status = http.StatusConflict
	case errors.Is(err, node.ErrForbidden):
		status = http.StatusForbidden
	}
	msg := err.Error()
	if status == http.StatusNotFound && strings.HasPrefix(r.URL.Path, "/agent/") {
		msg += " (build the agent with make images, or bootyard image build-agent)"
	}
	level := slog.LevelWarn
	if status == http.StatusNotFound {
		level = slog.LevelInfo
	}
	s.log.Log(r.Context(), level, "file request refused", slog.String("path", r.URL.Path),
		slog.String("remote", r.RemoteAddr), slog.Int("status", status), slog.Any("err", err))
	http.Error(w, msg, status)
}
