package web

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/bootyard/bootyard/images"
)

// defaultImageUploadLimit is the largest upload accepted unless configured: bigger than
// any disk image a node installs, small enough that a runaway client cannot fill a disk
// of the usual appliance size unnoticed.
const defaultImageUploadLimit = 64 << 30

// uploadImage is PUT /api/v1/images/{name}/file: the body is the image's bytes, streamed
// to the images directory and hashed on the way; ?sha256= is checked, ?format= and
// ?filename= tell the packing, ?default=true makes it the cluster default. The body has
// ImageUploadLimit bytes at most, and a client that stops sending for BodyReadTimeout is
// cut off (but a long upload that keeps coming is not).
func (s *Server) uploadImage(c echo.Context) error {
	q := c.QueryParams()
	spec := images.Spec{Name: c.Param("name"), SHA256: q.Get("sha256"), Format: q.Get("format"), Default: q.Get("default") == "true"}
	if c.Request().ContentLength > s.cfg.ImageUploadLimit {
		return echo.NewHTTPError(http.StatusRequestEntityTooLarge, fmt.Sprintf("image over the upload limit of %d bytes (--image-upload-limit)", s.cfg.ImageUploadLimit))
	}
	body := http.MaxBytesReader(c.Response(), c.Request().Body, s.cfg.ImageUploadLimit)
	r := idleDeadlineBody{Reader: body, rc: http.NewResponseController(c.Response()), idle: s.cfg.BodyReadTimeout}
	img, err := s.deps.Images.Upload(c.Request().Context(), spec, q.Get("filename"), r)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return echo.NewHTTPError(http.StatusRequestEntityTooLarge, fmt.Sprintf("image over the upload limit of %d bytes (--image-upload-limit)", s.cfg.ImageUploadLimit))
		}
		return err
	}
	c.Response().Header().Set(echo.HeaderLocation, "/api/v1/images/"+img.Name)
	return c.JSON(http.StatusCreated, img)
}
