package web

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/bootyard/bootyard/cloudinit"
	"github.com/bootyard/bootyard/node"
)

// JoinTurnHolder is what the cluster view needs from the server join queue.
type JoinTurnHolder interface {
	Holder(ctx context.Context) (cloudinit.Turn, bool, error)
}

// clusterView is GET /api/v1/cluster: the join settings (token redacted unless revealed)
// and the etcd arithmetic for the current server count and the next one.
type clusterView struct {
	Settings    settingsView `json:"settings"`
	Connected   bool         `json:"connected"`
	ClusterInit string       `json:"clusterInit,omitempty"`
	Quorum      node.Quorum  `json:"quorum"`
	Next        node.Quorum  `json:"next"`
	Warnings    []string     `json:"warnings"`
	// JoinTurn is the server now joining (servers join one at a time), if any: since
	// when, and until when at the latest (the joinTurnMinutes cap).
	JoinTurn *cloudinit.Turn `json:"joinTurn,omitempty"`
}

// settingsView shows the secrets (token, installEnv values, extra cloud-config) only as
// "[redacted]" or, with reveal, in plain text.
type settingsView struct {
	node.ClusterSettings
	Token    string `json:"token"`
	TokenSet bool   `json:"tokenSet"`
	// ExtraCloudConfig shadows the embedded field, which Redacted empties.
	ExtraCloudConfig    string `json:"extraCloudConfig,omitempty"`
	ExtraCloudConfigSet bool   `json:"extraCloudConfigSet"`
}

func (s *Server) getCluster(c echo.Context) error {
	ctx := c.Request().Context()
	reveal := c.QueryParam("reveal") == "true"
	if reveal && !s.isAdmin(c) {
		return echo.NewHTTPError(http.StatusUnauthorized, "reveal=true needs the admin token")
	}
	if reveal {
		s.log.Info("cluster settings revealed", slog.String("remote", c.RealIP()))
	}
	settings, err := s.deps.Inventory.ClusterSettings(ctx)
	if err != nil {
		return err
	}
	nodes, err := s.deps.Inventory.QuorumNodes(ctx)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.clusterView(ctx, settings, nodes, reveal))
}

func (s *Server) clusterView(ctx context.Context, settings node.ClusterSettings, nodes []node.Node, reveal bool) clusterView {
	servers := node.ServerCount(nodes)
	live, liveInit, isLive := s.liveServers()
	if isLive {
		// Connected: the cluster's control-plane Nodes are the members etcd counts.
		servers = live
	}
	v := clusterView{
		Settings:  redactSettings(settings, reveal),
		Connected: s.cfg.ClusterConnected(),
		Quorum:    node.QuorumFor(servers),
		Next:      node.QuorumFor(servers + 1),
		Warnings:  node.QuorumFor(servers).Warnings(),
	}
	for _, n := range nodes {
		if n.ClusterInit && n.State != node.StateDeleted {
			v.ClusterInit = n.Name
		}
	}
	if isLive && liveInit != "" {
		v.ClusterInit = liveInit
	}
	if s.deps.JoinTurns != nil {
		t, held, err := s.deps.JoinTurns.Holder(ctx)
		switch {
		case err != nil:
			v.Warnings = append(v.Warnings, "the server join queue cannot be read: "+err.Error())
		case held:
			v.JoinTurn = &t
		}
	}
	if settings.ServerURL == "" {
		v.Warnings = append(v.Warnings, "no server URL set: joining nodes cannot be rendered a server to join (bootyard cluster set --server-url https://HOST:6443)")
	}
	if !settings.Token.IsSet() {
		v.Warnings = append(v.Warnings, "no join token set (bootyard cluster set --token ...)")
	}
	if w := node.TokenWarning(settings.Token); w != "" {
		v.Warnings = append(v.Warnings, w)
	}
	if v.Warnings == nil {
		v.Warnings = []string{}
	}
	return v
}

func redactSettings(c node.ClusterSettings, reveal bool) settingsView {
	if reveal {
		return settingsView{ClusterSettings: c, Token: c.Token.Reveal(), TokenSet: c.Token.IsSet(),
			ExtraCloudConfig: c.ExtraCloudConfig, ExtraCloudConfigSet: c.ExtraCloudConfig != ""}
	}
	v := settingsView{ClusterSettings: c.Redacted(tokenMask), TokenSet: c.Token.IsSet(), ExtraCloudConfigSet: c.ExtraCloudConfig != ""}
	v.Token = v.ClusterSettings.Token.Reveal()
	if v.ExtraCloudConfigSet {
		v.ExtraCloudConfig = tokenMask
	}
	return v
}

func (s *Server) updateCluster(c echo.Context) error {
	ctx := c.Request().Context()
	var in ClusterInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	settings, err := s.deps.Inventory.UpdateClusterSettings(ctx, in.apply)
	if err != nil {
		return err
	}
	nodes, err := s.deps.Inventory.QuorumNodes(ctx)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.clusterView(ctx, settings, nodes, false))
}
