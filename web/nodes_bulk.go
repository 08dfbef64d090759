package web

import (
	"context"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// maxImportBody bounds a bulk import's body: 100,000 CSV rows are about 10 MB.
const maxImportBody = 64 << 20

// bulkRoutes mounts the calls that act on many nodes at once. They have their own group
// because an import's body is far bigger than the API's 1 MiB; every one needs the admin
// token.
func (s *Server) bulkRoutes(e *echo.Echo) {
	g := e.Group("/api/v1/bulk", middleware.BodyLimit(strconv.Itoa(maxImportBody)))
	g.POST("/import", s.bulkImport, s.requireAdmin)
	g.POST("/action", s.bulkAction, s.requireAdmin)
}

// ImportReport is the answer to a bulk import: counts, and every failed row with its line
// (CSV line number; for a JSON array the item's position from 1).
type ImportReport struct {
	Error     string               `json:"error,omitempty"`
	DryRun    bool                 `json:"dryRun,omitempty"`
	Committed bool                 `json:"committed"`
	Created   int                  `json:"created"`
	Unchanged int                  `json:"unchanged"`
	Failed    int                  `json:"failed"`
	Skipped   int                  `json:"skipped"`
	Errors    []store.ImportResult `json:"errors"`
	// results holds every row, for the web page's preview.
	results []store.ImportResult
}

// bulkImport is POST /api/v1/bulk/import: a CSV file (Content-Type text/csv) or a JSON
// array of import objects. ?continueOnError=true writes the good rows when some fail;
// ?dryRun=true checks everything and writes nothing.
func (s *Server) bulkImport(c echo.Context) error {
	var opts store.ImportOptions
	for _, p := range []struct {
		name string
		dst  *bool
	}{{"continueOnError", &opts.ContinueOnError}, {"dryRun", &opts.DryRun}} {
		if v := c.QueryParam(p.name); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return badField(p.name, fmt.Errorf("%s %q: %w: want true or false", p.name, v, node.ErrInvalid))
			}
			*p.dst = b
		}
	}
	opts.Source = source(c)
	lines, err := readImport(c)
	if err != nil {
		return err
	}
	rep, err := s.runImport(c.Request().Context(), lines, opts)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if rep.Error != "" && !rep.Committed && !rep.DryRun {
		status = rep.status
	}
	return c.JSON(status, rep.ImportReport)
}

// readImport parses the body by its content type.
func readImport(c echo.Context) ([]importLine, error) {
	ct, _, _ := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
	switch ct {
	case "text/csv", "application/csv", "text/plain":
		return parseImportCSV(c.Request().Body)
	case "application/json", "":
		var items []NodeInput
		if err := decodeJSON(c, &items); err != nil {
			return nil, err
		}
		if len(items) > maxImportRows {
			return nil, fmt.Errorf("%w: more than %d items: split the import", node.ErrInvalid, maxImportRows)
		}
		lines := make([]importLine, len(items))
		for i, in := range items {
			lines[i] = importLine{Line: i + 1, Input: in}
		}
		return lines, nil
	}
	return nil, echo.NewHTTPError(http.StatusUnsupportedMediaType, "send text/csv or a JSON array (application/json)")
}

type importOutcome struct {
	ImportReport
	status int
}

// runImport validates every line, then imports the valid ones in one store transaction.
// Without ContinueOnError, one bad line means nothing is written, but the store still
// checks the other lines (as a dry run), so the operator sees every error at once.
func (s *Server) runImport(ctx context.Context, lines []importLine, opts store.ImportOptions) (importOutcome, error) {
	results := make([]store.ImportResult, len(lines))
	rows := make([]store.ImportRow, 0, len(lines))
	rowAt := make([]int, 0, len(lines)) // rows[j] came from lines[rowAt[j]]
	images := map[string]error{}
	var firstErr error
	failed := 0
	fail := func(i int, name string, err error) {
		results[i] = store.ImportResult{Line: lines[i].Line, Name: name, Outcome: store.ImportFailed, Error: err.Error()}
		if firstErr == nil {
			firstErr = fmt.Errorf("line %d: %w", lines[i].Line, err)
		}
		failed++
	}
	for i, l := range lines {
		if l.Err != nil {
			fail(i, "", l.Err)
			continue
		}
		var n node.Node
		if err := l.Input.apply(&n, true); err != nil {
			fail(i, n.Name, err)
			continue
		}
		if l.Input.Image != nil {
			// One catalog lookup per image name, not per row.
			err, seen := images[*l.Input.Image]
			if !seen {
				err = s.checkImage(ctx, &l.Input)
				images[*l.Input.Image] = err
			}
			if err != nil {
				fail(i, n.Name, err)
				continue
			}
		}
		rows = append(rows, store.ImportRow{Line: l.Line, Node: n})
		rowAt = append(rowAt, i)
	}
	storeOpts := opts
	if failed > 0 && !opts.ContinueOnError {
		storeOpts.DryRun = true
	}
	sres, serr := s.deps.Inventory.ImportNodes(ctx, rows, storeOpts)
	if serr != nil && sres == nil {
		return importOutcome{}, serr
	}
	if firstErr == nil {
		firstErr = serr
	}
	for j, r := range sres {
		if failed > 0 && !opts.ContinueOnError && r.Outcome != store.ImportFailed {
			r.Outcome = store.ImportSkipped
		}
		results[rowAt[j]] = r
	}
	out := importOutcome{ImportReport: ImportReport{DryRun: opts.DryRun, Errors: []store.ImportResult{}, results: results}}
	for _, r := range results {
		switch r.Outcome {
		case store.ImportCreated:
			out.Created++
		case store.ImportUnchanged:
			out.Unchanged++
		case store.ImportSkipped:
			out.Skipped++
		case store.ImportFailed:
			out.Failed++
			out.Errors = append(out.Errors, r)
		}
	}
	out.Committed = !opts.DryRun && (out.Failed == 0 || opts.ContinueOnError)
	if out.Failed > 0 {
		out.Error = fmt.Sprintf("%d of %d rows failed; first %v", out.Failed, len(lines), firstErr)
		if !out.Committed {
			out.Error += "; nothing was imported"
		}
		out.status = statusOf(firstErr)
	}
	if out.Committed {
		s.afterBulkImport(ctx, lines, rows, rowAt, sres, &out)
	}
	return out, nil
}

// BulkInput is the body of POST /api/v1/bulk/action. The nodes are either listed by name
// or selected with the same filters as GET /api/v1/nodes (labelSelector, role, state,
// name prefix); an empty selection is refused rather than taken to mean every node.
type BulkInput struct {
	Action        string   `json:"action"` // retry, delete, set-image, set-labels
	Names         []string `json:"names,omitempty"`
	LabelSelector string   `json:"labelSelector,omitempty"`
	Role          string   `json:"role,omitempty"`
	State         string   `json:"state,omitempty"`
	NamePrefix    string   `json:"name,omitempty"`
	// Confirm must equal the number of nodes a delete selects: the operator types the
	// count they were shown, so a selector that matches more than they thought is refused.
	Confirm      *int              `json:"confirm,omitempty"`
	Force        bool              `json:"force,omitempty"`
	Mode         string            `json:"mode,omitempty"`
	Image        *string           `json:"image,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	RemoveLabels []string          `json:"removeLabels,omitempty"`
}

// BulkReport says what a bulk action did to each node that it could not act on.
type BulkReport struct {
	Action    string      `json:"action"`
	Matched   int         `json:"matched"`
	Succeeded int         `json:"succeeded"`
	Failed    int         `json:"failed"`
	Errors    []BulkError `json:"errors"`
}

// BulkError is one node a bulk action failed on.
type BulkError struct {
	Name  string `json:"name"`
	Error string `json:"error"`
}

// maxBulkNodes bounds one bulk action (the store writes it in batches of a few hundred
// nodes per transaction).
const maxBulkNodes = 100_000

func (s *Server) bulkAction(c echo.Context) error {
	var in BulkInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	rep, err := s.runBulk(c.Request().Context(), in, source(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, rep)
}

// runBulk resolves the selection and applies the action.
func (s *Server) runBulk(ctx context.Context, in BulkInput, src string) (BulkReport, error) {
	if _, err := s.bulkActionFunc(ctx, in, src); err != nil {
		return BulkReport{}, err // a bad action is reported before the selection is read
	}
	names, err := s.selectNames(ctx, in)
	if err != nil {
		return BulkReport{}, err
	}
	return s.applyBulk(ctx, in, names, src)
}

// applyBulk applies the action to the named nodes. The store writes them in batches
// (UpdateNodes, DeleteNodes) but checks each node as the single-node call does (the
// same change function; node.PlanDeletion's quorum check against the inventory as the
// earlier deletions left it), so a bulk delete of servers is refused node by node
// exactly where a one-by-one delete would be.
func (s *Server) applyBulk(ctx context.Context, in BulkInput, names []string, src string) (BulkReport, error) {
	act, err := s.bulkActionFunc(ctx, in, src)
	if err != nil {
		return BulkReport{}, err
	}
	if len(names) == 0 {
		return BulkReport{}, badField("names", fmt.Errorf("%w: no node is selected", node.ErrInvalid))
	}
	if in.Action == "delete" && (in.Confirm == nil || *in.Confirm != len(names)) {
		got := "nothing"
		if in.Confirm != nil {
			got = strconv.Itoa(*in.Confirm)
		}
		return BulkReport{}, badField("confirm", fmt.Errorf("%w: this deletes %d nodes: confirm must be %d (got %s)", node.ErrInvalid, len(names), len(names), got))
	}
	rep := BulkReport{Action: in.Action, Matched: len(names), Errors: []BulkError{}}
	results, err := act(names)
	for _, r := range results {
		if r.Err != nil {
			rep.Failed++
			rep.Errors = append(rep.Errors, BulkError{Name: r.Name, Error: r.Err.Error()})
			continue
		}
		rep.Succeeded++
	}
	return rep, err
}

// bulkRun applies an action to nodes and says what became of each.
type bulkRun func(names []string) ([]store.BulkResult, error)

func (s *Server) bulkActionFunc(ctx context.Context, in BulkInput, src string) (bulkRun, error) {
	switch in.Action {
	case "retry":
		return func(names []string) ([]store.BulkResult, error) {
			results, err := s.deps.Inventory.UpdateNodes(ctx, names, retryChange(src))
			for _, r := range results {
				if r.Err == nil {
					s.resumeDeletion(ctx, r.Node)
				}
			}
			return results, err
		}, nil
	case "delete":
		mode, err := node.ParseDeleteMode(in.Mode)
		if err != nil {
			return nil, badField("mode", err)
		}
		return func(names []string) ([]store.BulkResult, error) {
			return s.deleteManyWithCluster(ctx, names, node.DeleteOptions{
				Force: in.Force, Mode: mode, ClusterConnected: s.cfg.ClusterConnected(), Source: src,
			})
		}, nil
	case "set-image":
		if in.Image == nil {
			return nil, badField("image", fmt.Errorf("%w: set-image needs image (empty for the cluster default)", node.ErrInvalid))
		}
		if err := s.checkImage(ctx, &NodeInput{Image: in.Image}); err != nil {
			return nil, err
		}
		return s.bulkUpdate(ctx, src, "image set to "+strconv.Quote(*in.Image), func(n *node.Node) { n.Image = *in.Image }), nil
	case "set-labels":
		if len(in.Labels) == 0 && len(in.RemoveLabels) == 0 {
			return nil, badField("labels", fmt.Errorf("%w: set-labels needs labels or removeLabels", node.ErrInvalid))
		}
		if err := node.ValidateLabels(in.Labels); err != nil {
			return nil, badField("labels", err)
		}
		return s.bulkUpdate(ctx, src, "labels changed", func(n *node.Node) {
			l := maps.Clone(n.Labels)
			if l == nil {
				l = map[string]string{}
			}
			maps.Copy(l, in.Labels)
			for _, k := range in.RemoveLabels {
				delete(l, k)
			}
			n.Labels = l
		}), nil
	}
	return nil, badField("action", fmt.Errorf("action %q: %w: want retry, delete, set-image or set-labels", in.Action, node.ErrInvalid))
}

func (s *Server) bulkUpdate(ctx context.Context, src, what string, change func(*node.Node)) bulkRun {
	return func(names []string) ([]store.BulkResult, error) {
		return s.deps.Inventory.UpdateNodes(ctx, names, func(n *node.Node) ([]node.Event, error) {
			change(n)
			n.UpdatedAt = time.Now().UTC()
			return []node.Event{node.NewEvent(n.Name, node.EventLog, "bulk: "+what, src, n.UpdatedAt)}, nil
		})
	}
}

// selectNames resolves a bulk action's selection to node names.
func (s *Server) selectNames(ctx context.Context, in BulkInput) ([]string, error) {
	byQuery := in.LabelSelector != "" || in.Role != "" || in.State != "" || in.NamePrefix != ""
	switch {
	case len(in.Names) > 0 && byQuery:
		return nil, badField("names", fmt.Errorf("%w: give names or a selector, not both", node.ErrInvalid))
	case len(in.Names) > 0:
		if len(in.Names) > maxBulkNodes {
			return nil, badField("names", fmt.Errorf("%w: more than %d names", node.ErrInvalid, maxBulkNodes))
		}
		return in.Names, nil
	case !byQuery:
		return nil, badField("names", fmt.Errorf("%w: select nodes by names or a selector (labelSelector, role, state, name)", node.ErrInvalid))
	}
	q, err := parseNodeQuery(map[string][]string{
		"labelSelector": {in.LabelSelector}, "role": {in.Role}, "state": {in.State}, "name": {in.NamePrefix},
	})
	if err != nil {
		return nil, err
	}
	return s.namesMatching(ctx, q)
}

// namesMatching walks every page of q and returns the names, for a bulk action on "all
// matching nodes".
func (s *Server) namesMatching(ctx context.Context, q store.NodeQuery) ([]string, error) {
	q.Limit, q.NoTotal, q.Continue = store.MaxPageLimit, true, ""
	var names []string
	for {
		page, err := s.deps.Inventory.QueryNodeNames(ctx, q)
		if err != nil {
			return nil, err
		}
		names = append(names, page.Names...)
		if len(names) > maxBulkNodes {
			return nil, badField("labelSelector", fmt.Errorf("%w: the selection matches more than %d nodes", node.ErrInvalid, maxBulkNodes))
		}
		if page.Continue == "" {
			return names, nil
		}
		q.Continue = page.Continue
	}
}

// retry moves a failed node back to the step that failed; the one code path of the
// retry call, the nodes page and bulk retries.
func (s *Server) retry(ctx context.Context, name, src string) (node.Node, error) {
	n, err := s.deps.Inventory.UpdateNode(ctx, name, retryChange(src))
	if err != nil {
		return node.Node{}, err
	}
	s.resumeDeletion(ctx, n)
	return n, nil
}

// retryChange is the store change a retry makes, for one node or many.
func retryChange(src string) store.UpdateFunc {
	return func(n *node.Node) ([]node.Event, error) {
		to, err := n.RetryState()
		if err != nil {
			return nil, err
		}
		ev, err := n.Transition(to, "retry requested", src, time.Now().UTC())
		if err != nil {
			return nil, err
		}
		return []node.Event{ev}, nil
	}
}
