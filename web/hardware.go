package web

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/bootyard/bootyard/node"
)

// InspectInput is the optional body of POST /api/v1/nodes/<ref>/inspect.
type InspectInput struct {
	// After is poweroff (default), wait or reboot: what the machine does once it has
	// reported.
	After string `json:"after,omitempty"`
}

// hardwareRoutes mounts the inspection and BMC-adoption endpoints (operators, admin).
func (s *Server) hardwareRoutes(api *echo.Group) {
	api.POST("/nodes/:ref/inspect", s.inspectNode, s.requireAdmin)
	api.POST("/nodes/:ref/bmc/adopt", s.adoptBMC, s.requireAdmin)
}

// inspectNode records an inspection request: the machine's next network boot runs the
// agent in inspect mode (202: it happens when the machine boots).
func (s *Server) inspectNode(c echo.Context) error {
	var in InspectInput
	if c.Request().ContentLength != 0 {
		if err := decodeJSON(c, &in); err != nil {
			return err
		}
	}
	after, err := node.ParseAfterInspect(in.After)
	if err != nil {
		return badField("after", err)
	}
	return s.changeNode(c, http.StatusAccepted, func(n *node.Node) (node.Event, error) {
		return n.RequestInspection(after, source(c), time.Now().UTC())
	})
}

// adoptBMC makes the BMC address the latest inspection found the node's own.
func (s *Server) adoptBMC(c echo.Context) error {
	return s.changeNode(c, http.StatusOK, func(n *node.Node) (node.Event, error) {
		return n.AdoptBMC(source(c), time.Now().UTC())
	})
}

func (s *Server) changeNode(c echo.Context, status int, change func(*node.Node) (node.Event, error)) error {
	ctx := c.Request().Context()
	cur, err := s.deps.Inventory.GetNode(ctx, c.Param("ref"))
	if err != nil {
		return err
	}
	n, err := s.deps.Inventory.UpdateNode(ctx, cur.Name, func(n *node.Node) ([]node.Event, error) {
		ev, err := change(n)
		if err != nil {
			return nil, err
		}
		return []node.Event{ev}, nil
	})
	if err != nil {
		return err
	}
	return c.JSON(status, n)
}
