package machine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"path"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/bootyard/bootyard/agentapi"
	"github.com/bootyard/bootyard/ipxe"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// AgentInventory is what the agent API needs from the store.
type AgentInventory interface {
	GetNode(ctx context.Context, ref string) (node.Node, error)
	UpdateNode(ctx context.Context, name string, fn store.UpdateFunc) (node.Node, error)
	AppendEvents(ctx context.Context, events ...node.Event) error
	ClusterSettings(ctx context.Context) (node.ClusterSettings, error)
}

// AgentImages resolves the image a node installs (its own, else the cluster default).
type AgentImages interface {
	Resolve(ctx context.Context, n node.Node, s node.ClusterSettings) (store.Image, error)
}

// CloudInitFiles renders a node's NoCloud files, with or without join data.
type CloudInitFiles interface {
	Files(n node.Node, s node.ClusterSettings, join bool) (map[string][]byte, error)
}

// AgentConfig configures the agent API.
type AgentConfig struct {
	// AdvertiseURL is Bootyard's base URL as machines reach it.
	AdvertiseURL string
	// Tokens is the per-boot token table; nil makes one with DefaultAgentTokenTTL.
	Tokens *AgentTokens
	// SilenceLimit is how long a started agent may go without calling before its node
	// is marked failed (crash, power loss, network loss); 0 means 20 minutes.
	SilenceLimit time.Duration
	Logger       *slog.Logger
}

// Agent is the installer agent's side of Bootyard: it decides what iPXE boots for an
// install or a wipe (minting the per-boot token), and serves /agent/v1/* to the agent.
type Agent struct {
	base    string
	inv     AgentInventory
	images  AgentImages
	files   CloudInitFiles
	tokens  *AgentTokens
	silence time.Duration
	log     *slog.Logger
}

// NewAgent builds the agent API.
func NewAgent(cfg AgentConfig, inv AgentInventory, images AgentImages, files CloudInitFiles) (*Agent, error) {
	if inv == nil || images == nil || files == nil {
		return nil, errors.New("web: the agent API needs an inventory, an image catalog and a cloud-init renderer")
	}
	base := strings.TrimRight(cfg.AdvertiseURL, "/")
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") || strings.ContainsAny(base, " \t\r\n$") {
		return nil, fmt.Errorf("web: agent advertise URL %q: %w: want http://HOST[:PORT]", cfg.AdvertiseURL, node.ErrInvalid)
	}
	if cfg.Tokens == nil {
		cfg.Tokens = NewAgentTokens(0, nil)
	}
	if cfg.SilenceLimit <= 0 {
		cfg.SilenceLimit = 20 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Agent{base: base, inv: inv, images: images, files: files, tokens: cfg.Tokens,
		silence: cfg.SilenceLimit, log: cfg.Logger.With(slog.String("component", "agent"))}, nil
}

// ActionFor is the agent action a node's state calls for, if any.
func ActionFor(s node.State) (agentapi.Action, bool) {
	switch s {
	case node.StateRegistered, node.StateProvisioning:
		return agentapi.Install, true
	case node.StateWiping:
		return agentapi.Wipe, true
	}
	return "", false
}

// CanInstall reports whether n's image resolves, so an install could start now.
func (a *Agent) CanInstall(ctx context.Context, n node.Node) error {
	settings, err := a.inv.ClusterSettings(ctx)
	if err != nil {
		return err
	}
	_, err = a.images.Resolve(ctx, n, settings)
	return err
}

// BootTarget is what iPXE boots for n, which booted through mac from remote (an address
// the identity check verified as the node's): the agent (with a new per-boot token bound
// to remote, which revokes the node's previous one) for an install or a wipe, or an
// installer image's own kernel pointed at the node's NoCloud URL. An error means
// nothing can be booted yet (no image); the caller shows it and asks again later.
func (a *Agent) BootTarget(ctx context.Context, n node.Node, mac node.MAC, remote netip.Addr) (ipxe.InstallTarget, error) {
	action, ok := nodeAction(n)
	if !ok {
		return ipxe.InstallTarget{}, fmt.Errorf("node %s is %s: nothing to boot: %w", n.Name, n.State, node.ErrIllegalTransition)
	}
	if action == agentapi.Install {
		settings, err := a.inv.ClusterSettings(ctx)
		if err != nil {
			return ipxe.InstallTarget{}, err
		}
		img, err := a.images.Resolve(ctx, n, settings)
		if err != nil {
			return ipxe.InstallTarget{}, err
		}
		if img.Kind == store.ImageInstaller {
			// The distribution's installer needs no agent and no token: it reads the
			// NoCloud data, which the NoCloud endpoint guards by node state.
			a.tokens.Revoke(n.Name)
			return a.installerTarget(img, mac), nil
		}
	}
	tok, restarts, err := a.tokens.mint(n, action, remote)
	if err != nil {
		return ipxe.InstallTarget{}, err
	}
	if restarts > 0 {
		if err := a.agentRestarted(ctx, n, action, restarts); err != nil {
			a.tokens.Revoke(n.Name)
			return ipxe.InstallTarget{}, err
		}
	}
	return ipxe.InstallTarget{
		Kernel:  a.base + "/agent/vmlinuz",
		Initrds: []string{a.base + "/agent/initramfs.gz"},
		// initrd= names the image for the EFI stub; quiet keeps the console for the agent.
		// panic=30: a kernel panic reboots (and so asks Bootyard again) instead of hanging.
		Cmdline: "initrd=initramfs.gz console=ttyS0,115200 console=tty0 quiet panic=30 bootyard.url=" + a.base +
			" bootyard.token=" + tok.Reveal() + " bootyard.mac=" + mac.String(),
	}, nil
}

// maxAgentRestarts is how many times an agent may start its task and vanish (the
// machine booted again without a report) before the node fails: one reset is an
// operator or a power blip, three in a row is an agent that crashes.
const maxAgentRestarts = 3

// agentRestarted records that the node's previous agent started and never reported,
// and fails the node once that happened maxAgentRestarts times at this generation.
func (a *Agent) agentRestarted(ctx context.Context, n node.Node, action agentapi.Action, restarts int) error {
	now := time.Now().UTC()
	if restarts < maxAgentRestarts {
		msg := fmt.Sprintf("the %s agent started but never reported before the machine booted again (crash or reset, %d of %d allowed): starting over",
			action, restarts, maxAgentRestarts-1)
		if err := a.inv.AppendEvents(ctx, node.NewEvent(n.Name, node.EventWarning, msg, "agent", now)); err != nil {
			a.log.Error("record agent restart", slog.String("node", n.Name), slog.Any("err", err))
		}
		return nil
	}
	reason := fmt.Sprintf("%s failed: the agent started %d times and never reported (it crashes or the machine resets)", action, restarts)
	_, err := a.inv.UpdateNode(ctx, n.Name, func(cur *node.Node) ([]node.Event, error) {
		if cur.State != n.State || cur.Generation != n.Generation {
			return nil, fmt.Errorf("node %s changed meanwhile: %w", n.Name, node.ErrConflict)
		}
		ev, err := cur.Transition(node.StateFailed, reason, "agent", now)
		return []node.Event{ev}, err
	})
	if err != nil {
		return fmt.Errorf("node %s: %s: %w", n.Name, reason, err)
	}
	a.log.Warn("agent keeps restarting: node failed", slog.String("node", n.Name), slog.String("reason", reason))
	return fmt.Errorf("node %s: %s: %w", n.Name, reason, node.ErrRefused)
}

func (a *Agent) installerTarget(img store.Image, mac node.MAC) ipxe.InstallTarget {
	kernel, initrd := img.Kernel, img.Initrd
	if !isURL(kernel) {
		kernel = a.base + "/images/" + img.Name + "/kernel"
	}
	if !isURL(initrd) {
		initrd = a.base + "/images/" + img.Name + "/initrd"
	}
	cmdline := strings.TrimSpace("initrd=" + path.Base(initrd) + " " + img.Cmdline +
		" ds=nocloud;s=" + a.base + "/nocloud/" + mac.String() + "/")
	return ipxe.InstallTarget{Kernel: kernel, Initrds: []string{initrd}, Cmdline: cmdline}
}

func isURL(s string) bool { return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") }

// Limits on what an agent may send: enough for any honest report, too little to fill
// the event history or the server's memory.
const (
	maxAgentBody    = 256 << 10
	maxLogLines     = 100
	maxLogLineBytes = 1 << 10
	maxAgentReason  = 500
)

func (a *Agent) mount(e *echo.Echo) {
	g := e.Group("/agent/v1", middleware.BodyLimit(fmt.Sprint(maxAgentBody)), a.authenticate)
	g.GET("/task", a.task)
	g.POST("/progress", a.progress)
	g.POST("/log", a.logLines)
	g.POST("/done", a.done)
	g.POST("/failed", a.failed)
	g.POST("/firmware", a.firmware)
}

// agentCall is an authenticated agent request: its grant and the node as it stands.
type agentCall struct {
	key   tokenKey
	grant agentGrant
	node  node.Node
}

const agentCallKey = "bootyard.agent"

// authenticate checks the bearer token, that the call comes from the address the token
// was minted to, and that the node is still where the token's action makes sense: 401
// for the token or the address, 409 for the node.
func (a *Agent) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		tok, ok := strings.CutPrefix(c.Request().Header.Get(echo.HeaderAuthorization), "Bearer ")
		if !ok {
			return a.unauthorized(c, errAgentToken)
		}
		grant, key, err := a.tokens.use(strings.TrimSpace(tok), peerAddr(c.Request()))
		if err != nil {
			return a.unauthorized(c, err)
		}
		ctx := c.Request().Context()
		n, err := a.inv.GetNode(ctx, grant.node)
		if errors.Is(err, node.ErrNotFound) {
			a.tokens.revokeKey(key)
			return fmt.Errorf("node %s no longer exists: %w", grant.node, node.ErrConflict)
		}
		if err != nil {
			return err
		}
		if err := checkGrant(grant, n); err != nil {
			return err
		}
		c.Set(agentCallKey, agentCall{key: key, grant: grant, node: n})
		return next(c)
	}
}

func (a *Agent) unauthorized(c echo.Context, err error) error {
	a.log.Warn("agent request refused", slog.String("path", c.Path()), slog.String("remote", peerAddr(c.Request()).String()), slog.Any("err", err))
	c.Response().Header().Set("WWW-Authenticate", `Bearer realm="bootyard-agent"`)
	return echo.NewHTTPError(http.StatusUnauthorized, err.Error())
}

// checkGrant: the node must still be in a state the action belongs to, at the
// generation the token was minted for (a retry or reinstall since makes it stale).
func checkGrant(g agentGrant, n node.Node) error {
	action, ok := nodeAction(n)
	if !ok || action != g.action {
		return fmt.Errorf("node %s is %s: no %s to do: %w", n.Name, n.State, g.action, node.ErrIllegalTransition)
	}
	if n.Generation != g.generation {
		return fmt.Errorf("node %s is at generation %d, this boot was for %d: %w", n.Name, n.Generation, g.generation, node.ErrConflict)
	}
	return nil
}

func call(c echo.Context) agentCall { return c.Get(agentCallKey).(agentCall) }

func (a *Agent) task(c echo.Context) error {
	ctx := c.Request().Context()
	ac := call(c)
	if ac.grant.action == agentapi.Inspect {
		return a.inspectTask(c, ac)
	}
	n := ac.node
	settings, err := a.inv.ClusterSettings(ctx)
	if err != nil {
		return err
	}
	t := agentapi.Task{Node: n.Name, Action: ac.grant.action, Disk: n.Disk, RootDiskHints: n.RootDiskHints.String(),
		Wipe: agentapi.WipeOptions{Overwrite: settings.WipeOverwrite}}
	var notes []node.Event
	now := time.Now().UTC()
	img, err := a.images.Resolve(ctx, n, settings)
	switch {
	case err == nil && img.Kind == store.ImageDisk:
		if t.RootDiskHints == "" {
			t.RootDiskHints = img.RootDiskHints.String()
		}
		t.Image = &agentapi.Image{Name: img.Name, URL: img.URL, SHA256: img.SHA256, Size: img.Size, Format: string(img.Format)}
		if img.File != "" {
			t.Image.URL = a.base + "/images/" + img.Name
		}
	case t.Action == agentapi.Install && err != nil:
		return err
	case t.Action == agentapi.Install:
		return fmt.Errorf("node %s: image %s is an installer image: iPXE boots its kernel, not the agent: %w", n.Name, img.Name, node.ErrConflict)
	default:
		// A wipe goes ahead without an image to reinstall: leaving the old disk
		// contents would be worse than leaving a blank disk.
		why := "image " + img.Name + " is an installer image"
		if err != nil {
			why = err.Error()
		}
		notes = append(notes, node.NewEvent(n.Name, node.EventWarning, "wipe without reinstall: "+why+": the disks are left blank", "agent", now))
	}
	join := t.Action == agentapi.Install && n.State.MayReceiveJoinData()
	if t.CIData, err = a.files.Files(n, settings, join); err != nil {
		return fmt.Errorf("render cloud-init data for %s: %w", n.Name, err)
	}
	if !join && settings.Token.IsSet() {
		// The one promise a wipe makes: not a byte of the join token leaves Bootyard.
		for name, b := range t.CIData {
			if strings.Contains(string(b), settings.Token.Reveal()) {
				a.log.Error("cloud-init data without join data holds the join token: refusing the task", slog.String("node", n.Name), slog.String("file", name))
				return fmt.Errorf("node %s: %s rendered without join data still holds the join token", n.Name, name)
			}
		}
	}
	a.tokens.markStarted(ac.key)
	imgName := "(none)"
	if t.Image != nil {
		imgName = t.Image.Name
	}
	disk := n.Disk
	switch {
	case disk != "":
	case t.RootDiskHints != "":
		disk = "chosen by root-disk hints " + t.RootDiskHints
	default:
		disk = "the smallest non-removable disk that fits"
	}
	notes = append(notes, node.NewEvent(n.Name, node.EventLog, fmt.Sprintf("agent started %s: image %s, disk %s, from %s",
		t.Action, imgName, disk, peerAddr(c.Request())), "agent", now))
	if err := a.inv.AppendEvents(ctx, notes...); err != nil {
		a.log.Error("record agent start", slog.String("node", n.Name), slog.Any("err", err))
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, t)
}
