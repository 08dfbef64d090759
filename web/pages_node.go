package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/bootyard/bootyard/cloudinit"
	"github.com/bootyard/bootyard/node"
)

// tokenMask is what pages show instead of the join token.
const tokenMask = "[redacted]"

// nodeEventLimit bounds the history a node page loads: the installer log can run to
// thousands of lines, and the page is for the recent ones.
const nodeEventLimit = 500

type nodeView struct {
	pageView
	Node       nodeRow
	Summary    summaryView
	Timeline   []node.Event
	Log        []node.Event
	LastSeq    uint64
	Join       joinView
	CloudInit  []cloudInitFile
	CloudError string
	// ExtraCloudConfigSet says the shown user-data lacks the (secret) extra cloud-config.
	ExtraCloudConfigSet bool
	CanRetry            bool
	Delete              deleteView
	ShowDelete          bool
	// SummaryKey is the drawn summary's key, so the live stream does not redraw it unchanged.
	SummaryKey string
}

// summaryView is the live header of a node page.
type summaryView struct {
	Node     nodeRow
	Now      time.Time
	Progress int // latest installer percent, -1 when none
	Stage    string
}

// joinView is a node's join command as a page shows it: token masked.
type joinView struct {
	CSRF    string
	Name    string
	Command string
	Note    string // why there is no command
}

type cloudInitFile struct {
	Name    string
	Content string
}

// deleteView is what the delete dialog explains and asks.
type deleteView struct {
	Name     string
	IsServer bool
	// Remove: the node never started installing, so its record is simply dropped.
	Remove         bool
	Before, After  node.Quorum
	ToleranceDrops bool
	// Refusal is the reason the deletion would be refused without force (quorum,
	// cluster-init); the extra confirmation then doubles as force.
	Refusal string
	NeedAck bool
	Confirm string
	Mode    string
	Errors  map[string]string
	General string
}

func (u *ui) nodePage(c echo.Context) error {
	return u.renderNode(c, http.StatusOK, nil, c.QueryParam("delete") != "")
}

func (u *ui) renderNode(c echo.Context, status int, dv *deleteView, showDelete bool) error {
	ctx := c.Request().Context()
	n, err := u.inv.GetNode(ctx, c.Param("ref"))
	if err != nil {
		if errors.Is(err, node.ErrNotFound) {
			return u.render(c, http.StatusNotFound, "message", messageView{pageView: u.page(c, "Not found", "nodes"),
				Message: fmt.Sprintf("There is no node %q. It may have been removed.", c.Param("ref"))})
		}
		return err
	}
	events, err := u.inv.Events(ctx, n.Name, nodeEventLimit)
	if err != nil {
		return err
	}
	v := nodeView{
		pageView:   u.page(c, n.Name, "nodes"),
		Node:       u.powerRow(n),
		Summary:    u.summary(n, events),
		Join:       u.joinView(ctx, n),
		CanRetry:   n.State == node.StateFailed,
		ShowDelete: showDelete,
	}
	for _, e := range events {
		if isLogEvent(e) {
			v.Log = append(v.Log, e)
		} else {
			v.Timeline = append(v.Timeline, e)
		}
		v.LastSeq = max(v.LastSeq, e.Seq)
	}
	if v.SummaryKey, err = changeKey(summaryKey(v.Summary)); err != nil {
		return err
	}
	v.Join.CSRF = v.CSRF
	v.CloudInit, v.CloudError = u.cloudInitView(ctx, n)
	if settings, err := u.inv.ClusterSettings(ctx); err == nil {
		v.ExtraCloudConfigSet = settings.ExtraCloudConfig != ""
	}
	if dv == nil {
		all, err := u.inv.QuorumNodes(ctx)
		if err != nil {
			return err
		}
		d := planDeleteView(n, all)
		dv = &d
	}
	v.Delete = *dv
	return u.render(c, status, "node", v)
}

// isLogEvent picks the installer's lines (and progress) out of the history: they go to
// the log panel, the rest to the timeline.
func isLogEvent(e node.Event) bool { return e.Type == node.EventLog || e.Type == node.EventProgress }

func (u *ui) summary(n node.Node, events []node.Event) summaryView {
	s := summaryView{Node: newNodeRow(n), Now: u.now(), Progress: -1}
	for _, e := range events {
		if e.Type == node.EventProgress {
			s.Progress, s.Stage = e.Percent, e.Reason
		}
		if e.Type == node.EventTransition {
			// A new state starts a new progress story.
			s.Progress, s.Stage = -1, ""
		}
	}
	return s
}

// maskedSettings is the cluster settings with the token, the installer environment's
// values and the extra cloud-config masked, so a renderer asked for something to display
// never even sees them.
func maskedSettings(s node.ClusterSettings) node.ClusterSettings { return s.Redacted(tokenMask) }

// scrub removes every secret of the settings from text that is about to be shown, in
// case one reached it by another road (the token pasted into a label, say).
func scrub(text string, s node.ClusterSettings) string {
	for _, v := range s.SecretValues() {
		text = strings.ReplaceAll(text, v, tokenMask)
	}
	return text
}

func (u *ui) joinView(ctx context.Context, n node.Node) joinView {
	v := joinView{Name: n.Name}
	if u.join == nil {
		v.Note = "Not available: cloud-init rendering is not configured on this server."
		return v
	}
	settings, err := u.inv.ClusterSettings(ctx)
	if err != nil {
		v.Note = "Not available: " + err.Error()
		return v
	}
	cmd, err := u.join.JoinCommand(n, maskedSettings(settings), false)
	if err != nil {
		v.Note = "Not available: " + scrub(err.Error(), settings)
		return v
	}
	v.Command = scrub(cmd, settings)
	if !n.State.MayReceiveJoinData() {
		v.Note = fmt.Sprintf("A %s node is never sent this: its NoCloud data carries no join data.", n.State)
	}
	return v
}

func (u *ui) cloudInitView(ctx context.Context, n node.Node) ([]cloudInitFile, string) {
	if u.join == nil {
		return nil, "Not available: cloud-init rendering is not configured on this server."
	}
	settings, err := u.inv.ClusterSettings(ctx)
	if err != nil {
		return nil, err.Error()
	}
	files, err := u.join.Files(n, maskedSettings(settings), n.State.MayReceiveJoinData())
	if err != nil {
		return nil, scrub(err.Error(), settings)
	}
	var out []cloudInitFile
	for _, name := range cloudinit.FileNames {
		if b, ok := files[name]; ok {
			out = append(out, cloudInitFile{Name: name, Content: scrub(string(b), settings)})
		}
	}
	for name, b := range files {
		if !slices.Contains(cloudinit.FileNames, name) {
			out = append(out, cloudInitFile{Name: name, Content: scrub(string(b), settings)})
		}
	}
	return out, ""
}

// revealJoinCommand answers the explicit "reveal" click: the one page action that shows
// the token. It is a CSRF-checked POST, never a GET a prefetch could trigger.
func (u *ui) revealJoinCommand(c echo.Context) error {
	ctx := c.Request().Context()
	n, err := u.inv.GetNode(ctx, c.Param("ref"))
	if err != nil {
		return err
	}
	if u.join == nil {
		return echo.NewHTTPError(http.StatusNotImplemented, "cloud-init rendering is not configured")
	}
	settings, err := u.inv.ClusterSettings(ctx)
	if err != nil {
		return err
	}
	cmd, err := u.join.JoinCommand(n, settings, true)
	if err != nil {
		return err
	}
	u.srv.log.Info("join command revealed", slog.String("node", n.Name), slog.String("remote", c.RealIP()))
	if wantsJSON(c) {
		return c.JSON(http.StatusOK, map[string]any{"name": n.Name, "command": cmd, "revealed": true})
	}
	return u.render(c, http.StatusOK, "revealed", revealedView{pageView: u.page(c, "Join command of "+n.Name, "nodes"),
		What: "Join command of " + n.Name, Value: cmd, Back: "/ui/nodes/" + n.Name})
}

type revealedView struct {
	pageView
	What, Value, Back string
}

// planDeleteView dry-runs node.PlanDeletion on a copy, so the dialog can say before
// the click what the deletion does to the cluster.
func planDeleteView(n node.Node, all []node.Node) deleteView {
	v := deleteView{Name: n.Name, IsServer: n.Role == node.RoleServer, Mode: string(node.DeleteReinstall)}
	trial := n
	plan, err := node.PlanDeletion(&trial, all, node.DeleteOptions{Confirm: n.Name, Mode: node.DeleteReinstall})
	switch {
	case err == nil:
		v.Remove = plan.Remove
	case errors.Is(err, node.ErrRefused):
		v.Refusal = err.Error()
	default:
		v.General = err.Error()
	}
	if v.IsServer {
		before := node.ServerCount(all)
		after := node.ServerCount(slices.DeleteFunc(slices.Clone(all), func(o node.Node) bool { return o.Name == n.Name }))
		v.Before, v.After = node.QuorumFor(before), node.QuorumFor(after)
		v.ToleranceDrops = v.After.FailureTolerance < v.Before.FailureTolerance
	}
	v.NeedAck = v.Refusal != "" || v.ToleranceDrops
	return v
}

// deleteNode is the dialog's form: the same node.DeleteOptions the API builds, through
// Inventory.DeleteNode (which runs node.PlanDeletion in the store's transaction).
func (u *ui) deleteNode(c echo.Context) error {
	ctx := c.Request().Context()
	n, err := u.inv.GetNode(ctx, c.Param("ref"))
	if err != nil {
		return u.pageError(c, err)
	}
	all, err := u.inv.QuorumNodes(ctx)
	if err != nil {
		return err
	}
	dv := planDeleteView(n, all)
	dv.Confirm, dv.Mode = c.FormValue("confirm"), c.FormValue("mode")
	dv.Errors = map[string]string{}
	ack := c.FormValue("ack") != ""
	fail := func(field string, err error) error {
		if statusOf(err) >= 500 {
			return err
		}
		if field != "" {
			dv.Errors[field] = err.Error()
		} else {
			dv.General = err.Error()
		}
		return u.renderNode(c, statusOf(err), &dv, true)
	}
	mode, err := node.ParseDeleteMode(dv.Mode)
	if err != nil {
		return fail("mode", err)
	}
	if dv.Confirm != n.Name {
		// PlanDeletion refuses this too; checked first only to put the message by the field.
		return fail("confirm", fmt.Errorf("delete %s: %w: type the node's name exactly (got %q)", n.Name, node.ErrInvalid, dv.Confirm))
	}
	if dv.NeedAck && !ack {
		return fail("ack", fmt.Errorf("delete %s: %w: tick the box to confirm you accept the loss of failure tolerance", n.Name, node.ErrRefused))
	}
	out, removed, err := u.srv.deleteWithCluster(ctx, u.inv, n.Name, node.DeleteOptions{
		Confirm: dv.Confirm, Mode: mode,
		// The extra confirmation is the force: it is only offered with the refusal spelled out.
		Force:            ack && dv.Refusal != "",
		ClusterConnected: u.srv.cfg.ClusterConnected(),
		Source:           webSource,
	})
	if err != nil {
		if errors.Is(err, node.ErrRefused) {
			// The inventory changed since the dialog was drawn: show the refusal and offer force.
			dv.Refusal, dv.NeedAck = err.Error(), true
			return fail("ack", err)
		}
		return fail("", err)
	}
	u.srv.log.Info("node deletion requested", slog.String("node", n.Name), slog.String("state", string(out.State)),
		slog.Bool("removed", removed), slog.String("source", webSource))
	if removed {
		return c.Redirect(http.StatusSeeOther, "/ui/nodes?removed="+n.Name)
	}
	return c.Redirect(http.StatusSeeOther, "/ui/nodes/"+n.Name)
}

// retryNode moves a failed node back to where it failed from, as POST .../retry does.
func (u *ui) retryNode(c echo.Context) error {
	ctx := c.Request().Context()
	cur, err := u.inv.GetNode(ctx, c.Param("ref"))
	if err != nil {
		return u.pageError(c, err)
	}
	retried, err := u.inv.UpdateNode(ctx, cur.Name, func(n *node.Node) ([]node.Event, error) {
		to, err := n.RetryState()
		if err != nil {
			return nil, err
		}
		ev, err := n.Transition(to, "retry requested", webSource, u.now())
		if err != nil {
			return nil, err
		}
		return []node.Event{ev}, nil
	})
	if err != nil {
		return u.pageError(c, err)
	}
	u.srv.resumeDeletion(ctx, retried)
	return c.Redirect(http.StatusSeeOther, "/ui/nodes/"+cur.Name)
}

// pageError shows a refused action as a page that says why; server faults go to the
// error handler, which logs them.
func (u *ui) pageError(c echo.Context, err error) error {
	status := statusOf(err)
	if status >= 500 || wantsJSON(c) {
		return err
	}
	return u.render(c, status, "message", messageView{pageView: u.page(c, http.StatusText(status), "nodes"), Message: err.Error()})
}
