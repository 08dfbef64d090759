package web

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// Inventory is what the API needs from the store.
type Inventory interface {
	ImportNode(ctx context.Context, spec node.Node, source string) (node.Node, error)
	GetNode(ctx context.Context, ref string) (node.Node, error)
	// QuorumNodes is servers in full and other nodes as name, role and state: what the
	// quorum and deletion views read, without decoding the whole inventory.
	QuorumNodes(ctx context.Context) ([]node.Node, error)
	QueryNodes(ctx context.Context, q store.NodeQuery) (store.NodePage, error)
	// QueryNodesJSON is QueryNodes with each node as its stored JSON document: what the
	// list API sends, without decoding and re-encoding every node of a page.
	QueryNodesJSON(ctx context.Context, q store.NodeQuery) (store.RawNodePage, error)
	// QueryNodeNames is QueryNodes as names, for a bulk action's selection.
	QueryNodeNames(ctx context.Context, q store.NodeQuery) (store.NamePage, error)
	StateCounts(ctx context.Context) (map[node.State]int, error)
	ImportNodes(ctx context.Context, rows []store.ImportRow, opts store.ImportOptions) ([]store.ImportResult, error)
	UpdateNode(ctx context.Context, name string, fn store.UpdateFunc) (node.Node, error)
	DeleteNode(ctx context.Context, name string, opts node.DeleteOptions) (node.Node, bool, error)
	// UpdateNodes and DeleteNodes are the bulk actions' batched forms, with a result per node.
	UpdateNodes(ctx context.Context, names []string, fn store.UpdateFunc) ([]store.BulkResult, error)
	DeleteNodes(ctx context.Context, names []string, opts node.DeleteOptions) ([]store.BulkResult, error)
	Events(ctx context.Context, name string, limit int) ([]node.Event, error)
	ClusterSettings(ctx context.Context) (node.ClusterSettings, error)
	UpdateClusterSettings(ctx context.Context, fn func(*node.ClusterSettings) error) (node.ClusterSettings, error)
}

// source names who made a change, for events.
func source(c echo.Context) string {
	if ua := c.Request().Header.Get("User-Agent"); len(ua) >= 8 && ua[:8] == "bootyard" {
		return "cli"
	}
	return "api"
}

// listNodes answers one page: {"items": [...], "continue": "<token>", "total": N}. Pass
// continue back unchanged with the same filters for the next page; the order (by name
// unless sort says otherwise) stays consistent across pages while nodes come and go.
// Items are the nodes exactly as GET /api/v1/nodes/{ref} shows them.
func (s *Server) listNodes(c echo.Context) error {
	q, err := parseNodeQuery(c.QueryParams())
	if err != nil {
		return err
	}
	page, err := s.deps.Inventory.QueryNodesJSON(c.Request().Context(), q)
	if err != nil {
		return err
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, encodeRawPage(page))
}

// encodeRawPage writes the page as store.NodePage encodes, splicing in the stored node
// documents as they are: encoding/json would decode-check and compact each one again
// (json.RawMessage), which for a page of 1,000 nodes costs more than reading them.
func encodeRawPage(page store.RawNodePage) []byte {
	size := 64 + len(page.Continue)
	for _, item := range page.Items {
		size += len(item) + 1
	}
	b := make([]byte, 0, size)
	b = append(b, `{"items":[`...)
	for i, item := range page.Items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, item...)
	}
	b = append(b, ']')
	if page.Continue != "" {
		// The token is base64url: nothing in it needs escaping.
		b = append(b, `,"continue":"`...)
		b = append(b, page.Continue...)
		b = append(b, '"')
	}
	b = append(b, `,"total":`...)
	b = strconv.AppendInt(b, int64(page.Total), 10)
	return append(b, "}\n"...)
}

func (s *Server) importNode(c echo.Context) error {
	var in NodeInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	var n node.Node
	if err := in.apply(&n, true); err != nil {
		return err
	}
	if err := s.checkImage(c.Request().Context(), &in); err != nil {
		return err
	}
	n, err := s.deps.Inventory.ImportNode(c.Request().Context(), n, source(c))
	if err != nil {
		return err
	}
	if err := s.savePassword(c.Request().Context(), n, &in.BMCInput); err != nil {
		return err
	}
	s.imported(n, source(c))
	c.Response().Header().Set(echo.HeaderLocation, "/api/v1/nodes/"+n.Name)
	return c.JSON(http.StatusCreated, n)
}

func (s *Server) getNode(c echo.Context) error {
	n, err := s.deps.Inventory.GetNode(c.Request().Context(), c.Param("ref"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, n)
}

func (s *Server) updateNode(c echo.Context) error {
	ctx := c.Request().Context()
	var in NodeInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if err := s.checkImage(ctx, &in); err != nil {
		return err
	}
	cur, err := s.deps.Inventory.GetNode(ctx, c.Param("ref"))
	if err != nil {
		return err
	}
	n, err := s.deps.Inventory.UpdateNode(ctx, cur.Name, func(n *node.Node) ([]node.Event, error) {
		if err := in.apply(n, false); err != nil {
			return nil, err
		}
		n.UpdatedAt = time.Now().UTC()
		return []node.Event{node.NewEvent(n.Name, node.EventLog, "node updated", source(c), n.UpdatedAt)}, nil
	})
	if err != nil {
		return err
	}
	if err := s.savePassword(ctx, n, &in.BMCInput); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, n)
}

func (s *Server) deleteNode(c echo.Context) error {
	ctx := c.Request().Context()
	var in DeleteInput
	if c.Request().ContentLength > 0 {
		if err := decodeJSON(c, &in); err != nil {
			return err
		}
	}
	if v := c.QueryParam("confirm"); v != "" {
		in.Confirm = v
	}
	if v := c.QueryParam("force"); v != "" {
		in.Force, _ = strconv.ParseBool(v)
	}
	if v := c.QueryParam("mode"); v != "" {
		in.Mode = v
	}
	mode, err := node.ParseDeleteMode(in.Mode)
	if err != nil {
		return badField("mode", err)
	}
	cur, err := s.deps.Inventory.GetNode(ctx, c.Param("ref"))
	if err != nil {
		return err
	}
	n, removed, err := s.deleteWithCluster(ctx, s.deps.Inventory, cur.Name, node.DeleteOptions{
		Confirm: in.Confirm, Force: in.Force, Mode: mode,
		ClusterConnected: s.cfg.ClusterConnected(), Source: source(c),
	})
	if err != nil {
		return err
	}
	if removed {
		return c.JSON(http.StatusOK, map[string]any{"name": n.Name, "removed": true})
	}
	return c.JSON(http.StatusAccepted, n)
}

func (s *Server) nodeEvents(c echo.Context) error {
	ctx := c.Request().Context()
	n, err := s.deps.Inventory.GetNode(ctx, c.Param("ref"))
	if err != nil {
		return err
	}
	limit, _ := strconv.Atoi(c.QueryParam("limit"))
	events, err := s.deps.Inventory.Events(ctx, n.Name, limit)
	if err != nil {
		return err
	}
	if events == nil {
		events = []node.Event{}
	}
	return c.JSON(http.StatusOK, events)
}

func (s *Server) retryNode(c echo.Context) error {
	ctx := c.Request().Context()
	cur, err := s.deps.Inventory.GetNode(ctx, c.Param("ref"))
	if err != nil {
		return err
	}
	n, err := s.retry(ctx, cur.Name, source(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, n)
}
