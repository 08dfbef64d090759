package kubestore

import (
	"context"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/bootyard/bootyard/api/v1alpha1"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// AddImage creates a catalog entry (a taken name is ErrConflict) and, when asked or when
// no default exists, makes it the default.
func (s *Store) AddImage(ctx context.Context, img store.Image, makeDefault bool) (store.Image, error) {
	if err := ctxErr(ctx); err != nil {
		return store.Image{}, err
	}
	if err := img.Validate(); err != nil {
		return store.Image{}, err
	}
	if img.AddedAt.IsZero() {
		img.AddedAt = s.now()
	}
	img.Default = false
	err := s.rc.Post().Namespace(s.ns).Resource(resImages).Body(s.fromImage(img)).Do(ctx).Error()
	if apierrors.IsAlreadyExists(err) {
		return store.Image{}, fmt.Errorf("image %s already exists (remove it first to replace it): %w", img.Name, node.ErrConflict)
	}
	if err != nil {
		return store.Image{}, fmt.Errorf("add image %s: %w", img.Name, kindErr(err))
	}
	c, err := s.UpdateClusterSettings(ctx, func(c *node.ClusterSettings) error {
		if makeDefault || c.DefaultImage == "" {
			c.DefaultImage = img.Name
		}
		return nil
	})
	if err != nil {
		return store.Image{}, fmt.Errorf("add image %s: default: %w", img.Name, err)
	}
	img.Default = c.DefaultImage == img.Name
	return img, nil
}

// Image returns the named catalog entry (ErrNotFound if none).
func (s *Store) Image(ctx context.Context, name string) (store.Image, error) {
	if err := ctxErr(ctx); err != nil {
		return store.Image{}, err
	}
	o := &v1alpha1.BootyardImage{}
	if err := s.rc.Get().Namespace(s.ns).Resource(resImages).Name(name).Do(ctx).Into(o); err != nil {
		if apierrors.IsNotFound(err) {
			return store.Image{}, fmt.Errorf("image %q: %w", name, node.ErrNotFound)
		}
		return store.Image{}, fmt.Errorf("image %s: %w", name, kindErr(err))
	}
	c, err := s.ClusterSettings(ctx)
	if err != nil {
		return store.Image{}, err
	}
	return toImage(o, c.DefaultImage)
}

// Images returns the catalog, sorted by name.
func (s *Store) Images(ctx context.Context) ([]store.Image, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	c, err := s.ClusterSettings(ctx)
	if err != nil {
		return nil, err
	}
	var list v1alpha1.BootyardImageList
	if err := s.rc.Get().Namespace(s.ns).Resource(resImages).Do(ctx).Into(&list); err != nil {
		return nil, fmt.Errorf("images: %w", kindErr(err))
	}
	var out []store.Image
	for i := range list.Items {
		img, err := toImage(&list.Items[i], c.DefaultImage)
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	slices.SortFunc(out, func(a, b store.Image) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// RemoveImage deletes a catalog entry unless a node that may still be installed uses it
// (an *store.ImageInUseError); removing the default clears the default.
func (s *Store) RemoveImage(ctx context.Context, name string) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	if _, err := s.Image(ctx, name); err != nil {
		return err
	}
	c, err := s.ClusterSettings(ctx)
	if err != nil {
		return err
	}
	var users []string
	s.nodes.each(func(e *cachedNode) {
		n := e.n
		if n.State == node.StateDiscovered || n.State == node.StateDeleted {
			return
		}
		if n.Image == name || (n.Image == "" && c.DefaultImage == name) {
			users = append(users, n.Name)
		}
	})
	if len(users) > 0 {
		slices.Sort(users)
		return &store.ImageInUseError{Image: name, Nodes: users}
	}
	if err := s.rc.Delete().Namespace(s.ns).Resource(resImages).Name(name).Do(ctx).Error(); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("remove image %s: %w", name, kindErr(err))
	}
	_, err = s.UpdateClusterSettings(ctx, func(c *node.ClusterSettings) error {
		if c.DefaultImage == name {
			c.DefaultImage = ""
		}
		return nil
	})
	return err
}
