package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/bootyard/bootyard/images"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// ImageCatalog is what the API needs from the image catalog.
type ImageCatalog interface {
	Add(ctx context.Context, spec images.Spec) (store.Image, error)
	List(ctx context.Context) ([]store.Image, error)
	Get(ctx context.Context, name string) (store.Image, error)
	Remove(ctx context.Context, name string) error
}

// imageAPIRoutes mounts the catalog API for operators.
func (s *Server) imageAPIRoutes(api *echo.Group) {
	if s.deps.Images != nil {
		api.GET("/images", s.listImages)
		api.POST("/images", s.addImage, s.requireAdmin)
		api.GET("/images/:name", s.getImage)
		api.DELETE("/images/:name", s.removeImage, s.requireAdmin)
	}
}

func (s *Server) listImages(c echo.Context) error {
	imgs, err := s.deps.Images.List(c.Request().Context())
	if err != nil {
		return err
	}
	if imgs == nil {
		imgs = []store.Image{}
	}
	return c.JSON(http.StatusOK, imgs)
}

func (s *Server) getImage(c echo.Context) error {
	img, err := s.deps.Images.Get(c.Request().Context(), c.Param("name"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, img)
}

// addImage registers an image. A file image is read once here to take its checksum,
// so the call lasts as long as reading the file (about a second per GB).
func (s *Server) addImage(c echo.Context) error {
	var in images.Spec
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	img, err := s.deps.Images.Add(c.Request().Context(), in)
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderLocation, "/api/v1/images/"+img.Name)
	return c.JSON(http.StatusCreated, img)
}

func (s *Server) removeImage(c echo.Context) error {
	name := c.Param("name")
	if err := s.deps.Images.Remove(c.Request().Context(), name); err != nil {
		var inUse *store.ImageInUseError
		if errors.As(err, &inUse) {
			return c.JSON(http.StatusConflict, map[string]any{"error": err.Error(), "nodes": inUse.Nodes})
		}
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"name": name, "removed": true})
}

// checkImage refuses a node input naming an image the catalog does not have; empty
// means the cluster default and is always accepted.
func (s *Server) checkImage(ctx context.Context, in *NodeInput) error {
	if in.Image == nil || *in.Image == "" || s.deps.Images == nil {
		return nil
	}
	if _, err := s.deps.Images.Get(ctx, *in.Image); err != nil {
		if errors.Is(err, node.ErrNotFound) {
			return badField("image", fmt.Errorf("image %q: %w: not in the catalog (bootyard image list)", *in.Image, node.ErrInvalid))
		}
		return err
	}
	return nil
}
