package web

import (
	"bytes"
	"fmt"
	"io"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/bootyard/bootyard/node"
)

// JoinRenderer renders a node's join command and cloud-init files.
type JoinRenderer interface {
	JoinCommand(n node.Node, s node.ClusterSettings, reveal bool) (string, error)
	Files(n node.Node, s node.ClusterSettings, join bool) (map[string][]byte, error)
	WriteSeedISO(w io.Writer, files map[string][]byte) error
}

func (s *Server) joinCommand(c echo.Context) error {
	if s.deps.Join == nil {
		return echo.NewHTTPError(http.StatusNotImplemented, "cloud-init rendering is not configured")
	}
	reveal := c.QueryParam("reveal") == "true"
	if reveal && !s.isAdmin(c) {
		return echo.NewHTTPError(http.StatusUnauthorized, "reveal=true needs the admin token")
	}
	n, settings, err := s.nodeAndSettings(c)
	if err != nil {
		return err
	}
	cmd, err := s.deps.Join.JoinCommand(n, settings, reveal)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"name": n.Name, "command": cmd, "revealed": reveal})
}

// nodeAndSettings loads the node the URL names and the join settings it renders with.
func (s *Server) nodeAndSettings(c echo.Context) (node.Node, node.ClusterSettings, error) {
	ctx := c.Request().Context()
	n, err := s.deps.Inventory.GetNode(ctx, c.Param("ref"))
	if err != nil {
		return node.Node{}, node.ClusterSettings{}, err
	}
	settings, err := s.deps.Inventory.ClusterSettings(ctx)
	return n, settings, err
}

func (s *Server) seedISO(c echo.Context) error {
	if s.deps.Join == nil {
		return echo.NewHTTPError(http.StatusNotImplemented, "cloud-init rendering is not configured")
	}
	n, settings, err := s.nodeAndSettings(c)
	if err != nil {
		return err
	}
	// The same rule as the NoCloud endpoint: join data only while the node is provisioned.
	files, err := s.deps.Join.Files(n, settings, n.State.MayReceiveJoinData())
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := s.deps.Join.WriteSeedISO(&buf, files); err != nil {
		return fmt.Errorf("seed iso for %s: %w", n.Name, err)
	}
	c.Response().Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-seed.iso"`, n.Name))
	return c.Blob(http.StatusOK, "application/x-iso9660-image", buf.Bytes())
}
