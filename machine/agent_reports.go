package machine

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/bootyard/bootyard/agentapi"
	"github.com/bootyard/bootyard/node"
)

// The agent's reports: progress, log lines, and how its task ended.

var agentPhases = map[string]bool{"download": true, "write": true, "verify": true, "wipe": true, "cidata": true}

func (a *Agent) progress(c echo.Context) error {
	ac := call(c)
	var in agentapi.Progress
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if !agentPhases[in.Phase] {
		return badField("phase", fmt.Errorf("phase %q: %w: want download, write, verify, wipe or cidata", in.Phase, node.ErrInvalid))
	}
	if in.Bytes < 0 || in.Total < 0 || in.Percent < 0 || in.Percent > 100 {
		return badField("percent", fmt.Errorf("%w: bytes and total must be >= 0, percent 0..100", node.ErrInvalid))
	}
	pct := in.Percent
	if pct == 0 && in.Total > 0 {
		pct = int(min(100, in.Bytes*100/in.Total))
	}
	// One event per 5 % step per phase: a 1 GiB write reports many times a second,
	// and the history should read as a timeline, not a log of every report.
	if !a.tokens.progressStep(ac.key, in.Phase, pct/5) {
		return c.NoContent(http.StatusNoContent)
	}
	reason := in.Phase + fmt.Sprintf(" %d%%", pct)
	if in.Total > 0 {
		reason += fmt.Sprintf(" (%d of %d MiB)", in.Bytes>>20, in.Total>>20)
	}
	if msg := a.cleaner(c)(in.Message, maxAgentReason); msg != "" {
		reason += ": " + msg
	}
	ev := node.NewEvent(ac.node.Name, node.EventProgress, reason, "agent", time.Now().UTC())
	ev.Percent, ev.Bytes = pct, in.Bytes
	if err := a.inv.AppendEvents(c.Request().Context(), ev); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (a *Agent) logLines(c echo.Context) error {
	ac := call(c)
	var in agentapi.Log
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	now := time.Now().UTC()
	clean := a.cleaner(c)
	kept := in.Lines[:min(len(in.Lines), maxLogLines)]
	events := make([]node.Event, 0, len(kept)+1)
	for _, l := range kept {
		events = append(events, node.NewEvent(ac.node.Name, node.EventLog, clean(l, maxLogLineBytes), "agent", now))
	}
	if dropped := len(in.Lines) - len(kept); dropped > 0 {
		events = append(events, node.NewEvent(ac.node.Name, node.EventWarning,
			fmt.Sprintf("agent sent %d log lines in one report: kept the first %d, dropped %d", len(in.Lines), maxLogLines, dropped), "agent", now))
	}
	if err := a.inv.AppendEvents(c.Request().Context(), events...); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (a *Agent) done(c echo.Context) error {
	ac := call(c)
	var in agentapi.Done
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if in.Action != ac.grant.action {
		return badField("action", fmt.Errorf("action %q: %w: this boot was for %s", in.Action, node.ErrConflict, ac.grant.action))
	}
	if ac.grant.action == agentapi.Inspect {
		return a.inspectDone(c, ac, in)
	}
	to, reason := node.StateInstalled, "installer agent wrote the image and its cloud-init data"
	if ac.grant.action == agentapi.Wipe {
		checked, err := wipeVerified(in.Wiped, a.cleaner(c))
		if err != nil {
			return err
		}
		to, reason = node.StateDeleted, "disks wiped ("+checked+" read back blank) and reinstalled without join data"
	}
	return a.finish(c, ac, to, reason)
}

// maxWipedDisks bounds a wipe report: more disks than any server holds.
const maxWipedDisks = 256

// wipeVerified checks a wipe's read-back: deleted means no disk kept a partition table
// or a signature, so a done without the read-back, or with any disk not blank, is
// refused. It returns the disks, for the event.
func wipeVerified(wiped []agentapi.DiskCheck, clean func(string, int) string) (string, error) {
	if len(wiped) == 0 {
		return "", badField("wiped", fmt.Errorf("%w: a wipe's done must carry the read-back of every wiped disk", node.ErrInvalid))
	}
	if len(wiped) > maxWipedDisks {
		return "", badField("wiped", fmt.Errorf("%w: %d disks, at most %d", node.ErrInvalid, len(wiped), maxWipedDisks))
	}
	names := make([]string, 0, len(wiped))
	for _, d := range wiped {
		name := clean(d.Disk, 64)
		if name == "" || d.Size <= 0 {
			return "", badField("wiped", fmt.Errorf("%w: read-back %+v names no disk or size", node.ErrInvalid, d))
		}
		if !d.Blank {
			return "", badField("wiped", fmt.Errorf("%w: disk %s is not blank after the wipe: %s", node.ErrInvalid, name, clean(d.Found, maxAgentReason)))
		}
		names = append(names, name)
	}
	return strings.Join(names, ", "), nil
}

func (a *Agent) failed(c echo.Context) error {
	ac := call(c)
	var in agentapi.Failed
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	reason := a.cleaner(c)(in.Reason, maxAgentReason)
	if reason == "" {
		reason = "(no reason given)"
	}
	if ac.grant.action == agentapi.Inspect {
		if err := a.inspectFailed(c.Request().Context(), ac.grant, inspectReason(reason)); err != nil {
			return err
		}
		a.tokens.revokeKey(ac.key)
		return c.NoContent(http.StatusNoContent)
	}
	return a.finish(c, ac, node.StateFailed, string(ac.grant.action)+" failed: "+reason)
}

// finish moves the node out of the action's state and ends the token. The state and
// generation are checked again inside the write: the operator may have acted since.
func (a *Agent) finish(c echo.Context, ac agentCall, to node.State, reason string) error {
	n, err := a.inv.UpdateNode(c.Request().Context(), ac.node.Name, func(cur *node.Node) ([]node.Event, error) {
		if err := checkGrant(ac.grant, *cur); err != nil {
			return nil, err
		}
		ev, err := cur.Transition(to, reason, "agent", time.Now().UTC())
		if err != nil {
			return nil, err
		}
		return []node.Event{ev}, nil
	})
	if err != nil {
		return err
	}
	a.tokens.revokeKey(ac.key)
	a.log.Info("agent finished", slog.String("node", n.Name), slog.String("action", string(ac.grant.action)),
		slog.String("state", string(n.State)), slog.String("reason", reason))
	return c.JSON(http.StatusOK, map[string]any{"node": n.Name, "state": n.State})
}

// cleaner returns a function that keeps agent text to one printable line of at most
// limit bytes and masks any secret it might echo (a debug dump of user-data, its own
// command line). The secrets are read once per request, not once per line.
func (a *Agent) cleaner(c echo.Context) func(s string, limit int) string {
	var secrets []string
	if tok, ok := strings.CutPrefix(c.Request().Header.Get(echo.HeaderAuthorization), "Bearer "); ok && strings.TrimSpace(tok) != "" {
		secrets = append(secrets, strings.TrimSpace(tok))
	}
	if settings, err := a.inv.ClusterSettings(c.Request().Context()); err != nil {
		a.log.Warn("read cluster settings to redact agent text", slog.Any("err", err))
	} else if settings.Token.IsSet() {
		secrets = append(secrets, settings.Token.Reveal())
	}
	return func(s string, limit int) string {
		for _, secret := range secrets {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
		s = printable(strings.TrimRight(s, "\r\n"))
		if len(s) > limit {
			cut := limit
			for cut > 0 && !utf8Start(s[cut]) {
				cut--
			}
			s = s[:cut] + "…"
		}
		return s
	}
}

func utf8Start(b byte) bool { return b&0xc0 != 0x80 }
