package machine

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/bootyard/bootyard/cloudinit"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// NoCloudInventory is what the NoCloud endpoints need from the store.
type NoCloudInventory interface {
	NodeByMAC(ctx context.Context, mac node.MAC) (node.Node, error)
	GetNode(ctx context.Context, ref string) (node.Node, error)
	// MACForIP answers which MAC holds an active DHCP lease on ip (node.ErrNotFound if none).
	MACForIP(ctx context.Context, ip netip.Addr) (node.MAC, error)
	ClusterSettings(ctx context.Context) (node.ClusterSettings, error)
	AppendEvents(ctx context.Context, events ...node.Event) error
	UpdateNode(ctx context.Context, name string, fn store.UpdateFunc) (node.Node, error)
}

// maxPhoneHomeBody bounds a phone-home form: a status, one line of reason and the join
// unit's journal tail (at most 3000 bytes, up to three times that URL-encoded).
const maxPhoneHomeBody = 16 << 10

// maxReasonLen bounds the reason a node reports, as stored in its event.
const maxReasonLen = 200

// isKnownLeaf reports whether s is one of the names under a node's NoCloud path.
func isKnownLeaf(s string) bool {
	switch s {
	case cloudinit.FileMetaData, cloudinit.FileUserData, cloudinit.FileVendorData, cloudinit.FileNetworkConfig,
		"phone-home", "join-turn", "uninstall-report":
		return true
	}
	return false
}

// NoCloudHandler serves cloud-init's NoCloud seed under /nocloud/: the four files at
// /nocloud/<mac>/<file> (or /nocloud/<file>, the MAC found from the requester's DHCP
// lease, for VM templates that carry one fixed URL), plus the node-side callbacks
// /nocloud/<mac>/phone-home (POST), /nocloud/<mac>/join-turn (GET) and
// /nocloud/<mac>/uninstall-report (POST).
//
// Secret rules: join data (the token) goes only to a node whose state allows it, and
// only to a requester the identity check trusts as that node; callbacks also need the
// node's callback key and a trusted requester. A requester Bootyard knows is not the
// node is refused (403); one it cannot verify gets the files without join data.
// Refusals and withholdings leave an event on the node.
type NoCloudHandler struct {
	renderer *cloudinit.Renderer
	cache    *cloudinit.Cache
	inv      NoCloudInventory
	identity *Identity
	log      *slog.Logger
	turns    JoinTurns
	now      func() time.Time

	// recorded holds the events already written, by node and kind, so a machine that
	// re-reads its seed on every boot, or polls join-turn, leaves one line, not hundreds.
	recorded *onceKeys
	observe  func(outcome string)
}

// NoCloudConfig is what the NoCloud endpoints need.
type NoCloudConfig struct {
	Renderer  *cloudinit.Renderer
	Inventory NoCloudInventory
	Identity  *Identity
	// Turns is the server join queue, shared with the operator's cluster view (who holds
	// the turn); nil: a queue of the handler's own, in memory.
	Turns JoinTurns
	// Observe, if set, is told the outcome of every file request: served (with join
	// data), withheld (served without it) or refused (metrics).
	Observe func(outcome string)
	Logger  *slog.Logger
}

// JoinTurns is the server join queue (see cloudinit.JoinTurns for the rules): in memory
// for one appliance, on the Kubernetes API (kubestore.JoinTurns) when replicas share the
// machines, so two servers never join at once whichever replica they ask.
type JoinTurns interface {
	Take(ctx context.Context, name string, limit time.Duration) (ok bool, holder string, err error)
	Release(ctx context.Context, name string) error
}

// maxRecordedKeys bounds the once-only event keys; some hold requester addresses.
const maxRecordedKeys = 16384

// NewNoCloudHandler builds the handler; mount it at /nocloud/.
func NewNoCloudHandler(cfg NoCloudConfig) (*NoCloudHandler, error) {
	if cfg.Renderer == nil || cfg.Inventory == nil || cfg.Identity == nil {
		return nil, errors.New("machine: the NoCloud handler needs a renderer, an inventory and the identity check")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	turns := cfg.Turns
	if turns == nil {
		turns = cloudinit.NewJoinTurns(0, nil)
	}
	return &NoCloudHandler{
		renderer: cfg.Renderer,
		cache:    cloudinit.NewCache(cfg.Renderer),
		inv:      cfg.Inventory,
		identity: cfg.Identity,
		log:      log.With(slog.String("component", "nocloud")),
		turns:    turns,
		now:      func() time.Time { return time.Now().UTC() },
		recorded: newOnceKeys(maxRecordedKeys),
		observe:  cfg.Observe,
	}, nil
}

func (h *NoCloudHandler) observed(outcome string) {
	if h.observe != nil {
		h.observe(outcome)
	}
}

// noCloudRequest is one parsed request: who asks, for what, about which node.
type noCloudRequest struct {
	leaf   string // meta-data, user-data, ..., phone-home, join-turn
	remote netip.Addr
	node   node.Node
	// who is the identity check's answer; secrets only when who.Trusted.
	who Decision
}

func (h *NoCloudHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	req, status, err := h.resolve(ctx, r)
	if err != nil {
		h.refuse(ctx, w, req, status, err)
		return
	}
	switch req.leaf {
	case cloudinit.FileMetaData, cloudinit.FileUserData, cloudinit.FileVendorData, cloudinit.FileNetworkConfig:
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h.serveFile(ctx, w, req)
	case "phone-home":
		if r.Method != http.MethodPost {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h.phoneHome(ctx, w, r, req)
	case "join-turn":
		if r.Method != http.MethodGet {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h.joinTurn(ctx, w, r, req)
	case "uninstall-report":
		if r.Method != http.MethodPost {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h.uninstallReport(ctx, w, r, req)
	default:
		http.NotFound(w, r)
	}
}

// resolve parses the path, finds the node and checks the source address. On error the
// status says how to answer; req.node is set whenever the refusal belongs on a node.
func (h *NoCloudHandler) resolve(ctx context.Context, r *http.Request) (noCloudRequest, int, error) {
	var req noCloudRequest
	rest, ok := strings.CutPrefix(r.URL.Path, "/nocloud/")
	if !ok || rest == "" {
		return req, http.StatusNotFound, fmt.Errorf("path %q: %w", r.URL.Path, node.ErrNotFound)
	}
	// The socket's peer, never X-Forwarded-For: a header would let any machine claim to
	// be the node.
	if req.remote = peerAddr(r); !req.remote.IsValid() {
		return req, http.StatusBadRequest, fmt.Errorf("remote address %q: %w", r.RemoteAddr, node.ErrInvalid)
	}

	var mac node.MAC
	var err error
	leased := false
	if first, leaf, found := strings.Cut(rest, "/"); found {
		if mac, err = node.ParseMAC(first); err != nil || strings.Contains(leaf, "/") {
			return req, http.StatusNotFound, fmt.Errorf("path %q: %w", r.URL.Path, node.ErrNotFound)
		}
		req.leaf = leaf
	} else {
		// /nocloud/<file>: a VM template's fixed seed URL; the lease says who is asking.
		req.leaf = first
		if mac, err = h.inv.MACForIP(ctx, req.remote); err != nil {
			return req, statusOf(err), fmt.Errorf("no lease for %s: %w", req.remote, err)
		}
		leased = true
	}
	if req.node, err = h.inv.NodeByMAC(ctx, mac); err != nil {
		return req, statusOf(err), err
	}
	if req.node.State == node.StateDiscovered {
		// Never imported: Bootyard has nothing for it, and must not say more.
		name := req.node.Name
		req.node = node.Node{}
		return req, http.StatusNotFound, fmt.Errorf("node %s is not imported: %w", name, node.ErrNotFound)
	}
	if leased {
		// The lease that named the MAC is the identity.
		req.who = Decision{Verdict: Verified, Why: req.remote.String() + " is the node's DHCP lease", Trusted: true}
		return req, http.StatusOK, nil
	}
	if req.who, err = h.identity.Check(ctx, req.node, req.remote); err != nil {
		return req, http.StatusInternalServerError, err
	}
	if req.who.Verdict == Foreign {
		return req, http.StatusForbidden, fmt.Errorf("%s: %w", req.who.Why, node.ErrForbidden)
	}
	return req, http.StatusOK, nil
}

func (h *NoCloudHandler) serveFile(ctx context.Context, w http.ResponseWriter, req noCloudRequest) {
	n := &req.node
	settings, err := h.inv.ClusterSettings(ctx)
	if err != nil {
		h.log.Error("read cluster settings", slog.String("node", n.Name), slog.Any("err", err))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	join := n.State.MayReceiveJoinData() && req.who.Trusted
	files, err := h.cache.Files(*n, settings, join)
	if err != nil {
		// Most likely incomplete settings (no token, no server URL). Serving the files
		// without join data would install a machine that silently never joins.
		h.log.Error("render nocloud data", slog.String("node", n.Name), slog.Any("err", err))
		h.recordOnce(ctx, n.Name, "render-error:"+err.Error(), node.NewEvent(n.Name, node.EventWarning,
			"cannot render cloud-init data: "+err.Error(), "nocloud", h.now()))
		w.Header().Set("Retry-After", "30")
		http.Error(w, "cloud-init data not available yet", http.StatusServiceUnavailable)
		return
	}
	if req.leaf == cloudinit.FileUserData {
		gen := strconv.Itoa(n.Generation)
		if join {
			h.recordOnce(ctx, n.Name, "served:"+gen, node.NewEvent(n.Name, node.EventCloudInit,
				"user-data with join config served to "+req.remote.String()+" (generation "+gen+")", "nocloud", h.now()))
		} else if !req.who.Trusted && n.State.MayReceiveJoinData() {
			h.recordOnce(ctx, n.Name, "unverified:"+gen+":"+req.remote.String(), node.NewEvent(n.Name, node.EventWarning,
				"join data withheld from "+req.remote.String()+": "+req.who.Why, "nocloud", h.now()))
		} else {
			h.recordOnce(ctx, n.Name, "withheld:"+gen+":"+string(n.State), node.NewEvent(n.Name, node.EventCloudInit,
				"join data withheld: node is "+string(n.State)+"; served hostname and SSH keys only", "nocloud", h.now()))
		}
	}
	if join {
		h.observed("served")
	} else {
		h.observed("withheld")
	}
	body := files[req.leaf]
	hdr := w.Header()
	hdr.Set("Content-Type", "text/plain; charset=utf-8")
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	// user-data may hold the token: no proxy or client may keep a copy.
	hdr.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

// checkKey admits a callback: from a requester the identity check trusts as the node,
// with the node's callback key (compared in constant time).
func (h *NoCloudHandler) checkKey(ctx context.Context, r *http.Request, req noCloudRequest) (node.ClusterSettings, error) {
	n := &req.node
	if !req.who.Trusted {
		return node.ClusterSettings{}, fmt.Errorf("%s callback: %s: %w", strings.TrimPrefix(r.URL.Path, "/nocloud/"), req.who.Why, node.ErrForbidden)
	}
	settings, err := h.inv.ClusterSettings(ctx)
	if err != nil {
		return settings, fmt.Errorf("read cluster settings: %w", err)
	}
	want := h.renderer.CallbackKey(*n, settings)
	got := r.Header.Get(cloudinit.CallbackKeyHeader)
	if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return settings, fmt.Errorf("%s callback with a wrong or stale key: %w", strings.TrimPrefix(r.URL.Path, "/nocloud/"), node.ErrForbidden)
	}
	return settings, nil
}

// callbackForm admits a POSTed callback (checkKey) and parses its form, bounded to
// maxPhoneHomeBody. When it returns false it has answered the request.
func (h *NoCloudHandler) callbackForm(ctx context.Context, w http.ResponseWriter, r *http.Request, req noCloudRequest) (node.ClusterSettings, bool) {
	settings, err := h.checkKey(ctx, r, req)
	if err != nil {
		h.refuse(ctx, w, req, statusOf(err), err)
		return settings, false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxPhoneHomeBody)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return settings, false
	}
	return settings, true
}

// phoneHome takes the first-boot script's report (see phoneHomeUpdate for the states):
// joining keeps a server's join turn, joined and failed end it so the next server can go.
func (h *NoCloudHandler) phoneHome(ctx context.Context, w http.ResponseWriter, r *http.Request, req noCloudRequest) {
	n := &req.node
	settings, ok := h.callbackForm(ctx, w, r, req)
	if !ok {
		return
	}
	reason := cleanReason(r.PostForm.Get("reason"), settings.Token)
	status := r.PostForm.Get("status")
	var logTail []string
	switch status {
	case phoneInstalled, phoneJoined:
		// The join is over: the next server may go.
		h.releaseTurn(ctx, n.Name)
	case phoneJoining:
		// The installer only queued the join: the turn is held until joined or failed.
	case phoneFailed:
		h.releaseTurn(ctx, n.Name)
		logTail = cleanLogTail(r.PostForm.Get("log"), settings.Token)
		h.log.Warn("node reports first boot failed", slog.String("node", n.Name), slog.String("reason", reason))
	default:
		http.Error(w, "status must be installed, joining, joined or failed", http.StatusBadRequest)
		return
	}
	_, err := h.inv.UpdateNode(ctx, n.Name, phoneHomeUpdate(status, reason, logTail, h.now()))
	if err != nil {
		h.log.Error("record phone-home", slog.String("node", n.Name), slog.Any("err", err))
		http.Error(w, "internal error", statusOf(err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// joinTurn answers a server's "may I join now?": 200 "go" when no other server is
// mid-join, 423 "wait" otherwise. The holder asks again while it joins, which renews
// the turn up to the cap (the join-turn-minutes setting). Agents do not wait for each
// other and never ask.
func (h *NoCloudHandler) joinTurn(ctx context.Context, w http.ResponseWriter, r *http.Request, req noCloudRequest) {
	n := &req.node
	settings, err := h.checkKey(ctx, r, req)
	if err != nil {
		h.refuse(ctx, w, req, statusOf(err), err)
		return
	}
	if n.Role != node.RoleServer || !n.State.MayReceiveJoinData() {
		http.Error(w, "only a server being provisioned takes a join turn", http.StatusConflict)
		return
	}
	limit := settings.JoinTurnLimit()
	ok, holder, err := h.turns.Take(ctx, n.Name, limit)
	if err == nil && !ok && holder != "" && h.holderIsDone(ctx, holder) {
		h.releaseTurn(ctx, holder)
		ok, holder, err = h.turns.Take(ctx, n.Name, limit)
	}
	if err != nil {
		// Without the queue's word no server goes: the join unit asks again.
		h.log.Error("join turn", slog.String("node", n.Name), slog.Any("err", err))
		http.Error(w, "the join queue cannot be read; ask again", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if !ok && holder == "" {
		h.recordOnce(ctx, n.Name, "turn-capped:"+strconv.Itoa(n.Generation), node.NewEvent(n.Name, node.EventWarning,
			"join turn ended after "+limit.String()+" without joined or failed: other servers go first", "nocloud", h.now()))
		w.WriteHeader(http.StatusLocked)
		fmt.Fprintf(w, "wait: this server's join turn ran out after %s\n", limit)
		return
	}
	if !ok {
		h.recordOnce(ctx, n.Name, "turn-wait:"+holder+":"+strconv.Itoa(n.Generation), node.NewEvent(n.Name, node.EventCloudInit,
			"waiting to join: server "+holder+" is joining", "nocloud", h.now()))
		w.WriteHeader(http.StatusLocked)
		fmt.Fprintf(w, "wait: %s is joining\n", holder)
		return
	}
	h.recordOnce(ctx, n.Name, "turn-go:"+strconv.Itoa(n.Generation), node.NewEvent(n.Name, node.EventCloudInit,
		"join turn granted: no other server is joining", "nocloud", h.now()))
	w.Write([]byte("go\n"))
}

// releaseTurn ends name's join turn. A release that fails is logged: the turn then ends
// by itself when its holder stops renewing (the TTL), or at its cap.
func (h *NoCloudHandler) releaseTurn(ctx context.Context, name string) {
	if err := h.turns.Release(ctx, name); err != nil {
		h.log.Error("release join turn", slog.String("node", name), slog.Any("err", err))
	}
}

// holderIsDone reports whether the server holding the turn has finished joining by
// other means than phoning home: its Kubernetes Node became Ready (active), or it was
// deleted or failed. Such a holder must not block the next server until the TTL runs out.
func (h *NoCloudHandler) holderIsDone(ctx context.Context, holder string) bool {
	n, err := h.inv.GetNode(ctx, holder)
	switch {
	case errors.Is(err, node.ErrNotFound):
		return true
	case err != nil:
		h.log.Error("look up join turn holder", slog.String("node", holder), slog.Any("err", err))
		return false
	}
	return !n.State.MayReceiveJoinData()
}

// refuse answers a refused request and records why on the node, when there is one.
func (h *NoCloudHandler) refuse(ctx context.Context, w http.ResponseWriter, req noCloudRequest, status int, err error) {
	h.observed("refused")
	attrs := []any{slog.String("remote", req.remote.String()), slog.String("leaf", req.leaf), slog.Int("status", status), slog.Any("err", err)}
	if req.node.Name != "" {
		attrs = append(attrs, slog.String("node", req.node.Name))
		// The leaf comes from the URL: only known names reach the event log, so a caller
		// cannot fill it (or this process's memory) with made-up paths.
		leaf := "an unknown path"
		if isKnownLeaf(req.leaf) {
			leaf = req.leaf
		}
		h.recordOnce(ctx, req.node.Name, "refused:"+req.remote.String()+":"+leaf, node.NewEvent(req.node.Name, node.EventCloudInit,
			"refused "+leaf+" to "+req.remote.String()+": "+err.Error(), "nocloud", h.now()))
	}
	if req.node.Name == "" && status == http.StatusNotFound {
		// An unknown MAC or path: routine for scanners and for machines not imported yet.
		h.log.Debug("nocloud request for nothing we know", attrs...)
	} else {
		h.log.Warn("nocloud request refused", attrs...)
	}
	http.Error(w, http.StatusText(status), status)
}

// recordOnce appends ev unless an event with the same key was already written for the
// node by this process.
func (h *NoCloudHandler) recordOnce(ctx context.Context, name, key string, ev node.Event) {
	if !h.recorded.first(name + "|" + key) {
		return
	}
	if err := h.inv.AppendEvents(ctx, ev); err != nil {
		h.log.Error("record nocloud event", slog.String("node", name), slog.Any("err", err))
	}
}

// cleanReason keeps a node-reported reason to one short printable line, and never lets
// the token through even if a broken script echoed it.
func cleanReason(s string, token node.Secret) string {
	if token.IsSet() {
		s = strings.ReplaceAll(s, token.Reveal(), "[redacted]")
	}
	s = cleanLine(s, maxReasonLen)
	if s == "" {
		s = "(no reason given)"
	}
	return s
}
