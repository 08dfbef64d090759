package machine

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/bootyard/bootyard/agentapi"
	"github.com/bootyard/bootyard/node"
)

// Run marks the node of an agent that went silent mid-task as failed, until ctx ends.
// An agent that crashes, loses power or loses the network cannot report it.
func (a *Agent) Run(ctx context.Context) error {
	tick := time.NewTicker(min(a.silence/4, time.Minute))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			a.failSilent(ctx)
		}
	}
}

func (a *Agent) failSilent(ctx context.Context) {
	for _, s := range a.tokens.silent(a.silence) {
		g := s.grant
		phase := g.phase
		if phase == "" {
			phase = "start"
		}
		reason := fmt.Sprintf("%s failed: the agent stopped reporting for over %s during %s (crash, power loss or network failure)",
			g.action, a.silence, phase)
		if g.action == agentapi.Inspect {
			// An inspection is no lifecycle step: the node keeps its state.
			if err := a.inspectFailed(ctx, g, reason); err != nil {
				a.log.Info("silent inspection's node moved on", slog.String("node", g.node), slog.Any("err", err))
			}
			a.tokens.revokeKey(s.key)
			continue
		}
		_, err := a.inv.UpdateNode(ctx, g.node, func(cur *node.Node) ([]node.Event, error) {
			if err := checkGrant(g, *cur); err != nil {
				return nil, err
			}
			ev, err := cur.Transition(node.StateFailed, reason, "agent", time.Now().UTC())
			if err != nil {
				return nil, err
			}
			return []node.Event{ev}, nil
		})
		a.tokens.revokeKey(s.key)
		if err != nil {
			// The node moved on (deleted, retried): the silent agent no longer matters.
			a.log.Info("silent agent's node moved on", slog.String("node", g.node), slog.Any("err", err))
			continue
		}
		a.log.Warn("agent went silent: node failed", slog.String("node", g.node), slog.String("reason", reason))
	}
}
