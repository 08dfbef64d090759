package machine

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// uninstallReport takes the host uninstall script's outcome (cluster/uninstall.sh): form
// fields status (its exit status, 0-255) and log (the end of its output). LLMOS's
// uninstall stops k3s, and with it the kubelet that would have reported the helper pod's
// exit; this callback is the channel that outlives it. It is admitted like phone-home
// (the node's callback key, from the node's own address) and only while the node is
// being deleted in uninstall mode; the deletion's uninstall step reads the report.
func (h *NoCloudHandler) uninstallReport(ctx context.Context, w http.ResponseWriter, r *http.Request, req noCloudRequest) {
	n := &req.node
	settings, ok := h.callbackForm(ctx, w, r, req)
	if !ok {
		return
	}
	rc, err := strconv.Atoi(r.PostForm.Get("status"))
	if err != nil || rc < 0 || rc > 255 {
		http.Error(w, "status must be the uninstall's exit status, 0-255", http.StatusBadRequest)
		return
	}
	rep := node.UninstallReport{ExitStatus: rc, Log: cleanLogTail(r.PostForm.Get("log"), settings.Token),
		From: req.remote.String(), At: h.now()}
	if _, err := h.inv.UpdateNode(ctx, n.Name, recordUninstallReport(rep)); err != nil {
		h.log.Warn("uninstall report not recorded", slog.String("node", n.Name), slog.Int("status", rc), slog.Any("err", err))
		code := statusOf(err)
		msg := err.Error()
		if code == http.StatusInternalServerError {
			msg = "internal error"
		}
		http.Error(w, msg, code)
		return
	}
	h.log.Info("node reports its uninstall", slog.String("node", n.Name), slog.Int("status", rc))
	w.WriteHeader(http.StatusNoContent)
}

// recordUninstallReport stores the report on a node being uninstalled, with an event and,
// for a failure, the log lines. A deletion that failed while the host was still at work
// (Bootyard stopped waiting) takes it too: its retry goes on from it. A node in any other
// state refuses it (conflict): a late report must not decide a later deletion.
func recordUninstallReport(rep node.UninstallReport) store.UpdateFunc {
	return func(cur *node.Node) ([]node.Event, error) {
		uninstalling := cur.State == node.StateDeleting || (cur.State == node.StateFailed && cur.FailedFrom == node.StateDeleting)
		if !uninstalling || cur.DeleteMode != node.DeleteUninstall {
			return nil, fmt.Errorf("uninstall report for %s: node is %s (mode %q), not being uninstalled: %w",
				cur.Name, cur.State, cur.DeleteMode, node.ErrConflict)
		}
		cur.UninstallReport = &rep
		if rep.OK() {
			return []node.Event{node.NewEvent(cur.Name, node.EventCluster,
				"uninstall report from "+rep.From+": exit status 0, LLMOS uninstalled and the join data removed", "uninstall", rep.At)}, nil
		}
		events := []node.Event{node.NewEvent(cur.Name, node.EventWarning,
			"uninstall report from "+rep.From+": exit status "+strconv.Itoa(rep.ExitStatus), "uninstall", rep.At)}
		for _, l := range rep.Log {
			events = append(events, node.NewEvent(cur.Name, node.EventLog, l, "uninstall", rep.At))
		}
		return events, nil
	}
}
