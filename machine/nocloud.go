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
	"sync"
	"time"
	"unicode"

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
	// LeaseForMAC returns mac's active lease (node.ErrNotFound if none).
	LeaseForMAC(ctx context.Context, mac node.MAC) (store.Lease, error)
	ClusterSettings(ctx context.Context) (node.ClusterSettings, error)
	AppendEvents(ctx context.Context, events ...node.Event) error
	UpdateNode(ctx context.Context, name string, fn store.UpdateFunc) (node.Node, error)
}

// maxPhoneHomeBody bounds a phone-home form: a status and one line of reason.
const maxPhoneHomeBody = 4 << 10

// maxReasonLen bounds the reason a node reports, as stored in its event.
const maxReasonLen = 200

// isKnownLeaf reports whether s is one of the names under a node's NoCloud path.
func isKnownLeaf(s string) bool {
	switch s {
	case cloudinit.FileMetaData, cloudinit.FileUserData, cloudinit.FileVendorData, cloudinit.FileNetworkConfig,
		"phone-home", "join-turn":
		return true
	}
	return false
}

// NoCloudHandler serves cloud-init's NoCloud seed under /nocloud/: the four files at
// /nocloud/<mac>/<file> (or /nocloud/<file>, the MAC found from the requester's DHCP
// lease, for VM templates that carry one fixed URL), plus the node-side callbacks
// /nocloud/<mac>/phone-home (POST) and /nocloud/<mac>/join-turn (GET).
//
// Secret rules: join data (the token) goes only to a node whose state allows it, and
// only to the requester's address if Bootyard knows the node's address; callbacks also
// need the node's callback key. Refusals are 403/404 plus an event on the node.
type NoCloudHandler struct {
	renderer *cloudinit.Renderer
	cache    *cloudinit.Cache
	inv      NoCloudInventory
	log      *slog.Logger
	turns    *cloudinit.JoinTurns
	now      func() time.Time

	mu sync.Mutex
	// recorded holds the events already written per node, so a machine that re-reads
	// its seed on every boot, or polls join-turn, leaves one line, not hundreds.
	recorded map[string]map[string]bool
	observe  func(outcome string)
}

// NewNoCloudHandler builds the handler; mount it at /nocloud/.
func NewNoCloudHandler(r *cloudinit.Renderer, inv NoCloudInventory, log *slog.Logger) *NoCloudHandler {
	if log == nil {
		log = slog.Default()
	}
	return &NoCloudHandler{
		renderer: r,
		cache:    cloudinit.NewCache(r),
		inv:      inv,
		log:      log.With(slog.String("component", "nocloud")),
		turns:    cloudinit.NewJoinTurns(0, nil),
		now:      func() time.Time { return time.Now().UTC() },
		recorded: make(map[string]map[string]bool),
	}
}

// Observe sets a callback told the outcome of every file request: served (with join
// data), withheld (served without it) or refused. Metrics count them; call before serving.
func (h *NoCloudHandler) Observe(fn func(outcome string)) { h.observe = fn }

func (h *NoCloudHandler) observed(outcome string) {
	if h.observe != nil {
		h.observe(outcome)
	}
}

// Turns exposes the server join queue, for status pages.
func (h *NoCloudHandler) Turns() *cloudinit.JoinTurns { return h.turns }

// noCloudRequest is one parsed request: who asks, for what, about which node.
type noCloudRequest struct {
	leaf   string // meta-data, user-data, ..., phone-home, join-turn
	remote netip.Addr
	node   node.Node
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
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return req, http.StatusBadRequest, fmt.Errorf("remote address %q: %w", r.RemoteAddr, node.ErrInvalid)
	}
	req.remote = ap.Addr().Unmap()

	var mac node.MAC
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
	if !leased {
		if err := h.checkSource(ctx, &req.node, req.remote); err != nil {
			return req, statusOf(err), err
		}
	}
	return req, http.StatusOK, nil
}

// checkSource enforces "when Bootyard knows the node's address, the request comes from
// it". The requester's address may be leased to this node (fine) or to another machine
// (refused); it may be the node's static address (fine); otherwise, if any of the node's
// MACs holds an active lease, the request should have come from that address (refused).
// A requester with no lease, no static match and no lease of its own is allowed: in
// proxyDHCP mode another server hands out the addresses and Bootyard cannot know them.
func (h *NoCloudHandler) checkSource(ctx context.Context, n *node.Node, remote netip.Addr) error {
	owner, err := h.inv.MACForIP(ctx, remote)
	switch {
	case err == nil:
		if n.HasMAC(owner) {
			return nil
		}
		return fmt.Errorf("request from %s, which is leased to %s, not to node %s: %w", remote, owner, n.Name, node.ErrForbidden)
	case !errors.Is(err, node.ErrNotFound):
		return fmt.Errorf("lease lookup %s: %w", remote, err)
	}
	if n.IP.IsValid() && n.IP.Addr() == remote {
		return nil
	}
	for _, mac := range n.MACs {
		lease, err := h.inv.LeaseForMAC(ctx, mac)
		switch {
		case err == nil:
			return fmt.Errorf("request from %s, but node %s holds the lease on %s: %w", remote, n.Name, lease.IP, node.ErrForbidden)
		case !errors.Is(err, node.ErrNotFound):
			return fmt.Errorf("lease lookup %s: %w", mac, err)
		}
	}
	return nil
}

func (h *NoCloudHandler) serveFile(ctx context.Context, w http.ResponseWriter, req noCloudRequest) {
	n := &req.node
	settings, err := h.inv.ClusterSettings(ctx)
	if err != nil {
		h.log.Error("read cluster settings", slog.String("node", n.Name), slog.Any("err", err))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	join := n.State.MayReceiveJoinData()
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

// checkKey compares the node's callback key in constant time.
func (h *NoCloudHandler) checkKey(ctx context.Context, r *http.Request, n *node.Node) (node.ClusterSettings, error) {
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

// phoneHome takes the first-boot script's report. "installed" moves a provisioning
// node to installed (the installer agent may have done so already) and ends a server's
// join turn; "failed" records a warning and ends the turn so the next server can go.
func (h *NoCloudHandler) phoneHome(ctx context.Context, w http.ResponseWriter, r *http.Request, req noCloudRequest) {
	n := &req.node
	settings, err := h.checkKey(ctx, r, n)
	if err != nil {
		h.refuse(ctx, w, req, statusOf(err), err)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxPhoneHomeBody)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	reason := cleanReason(r.PostForm.Get("reason"), settings.Token)
	status := r.PostForm.Get("status")
	now := h.now()
	switch status {
	case "installed":
		h.turns.Release(n.Name)
		_, err = h.inv.UpdateNode(ctx, n.Name, func(cur *node.Node) ([]node.Event, error) {
			events := []node.Event{node.NewEvent(cur.Name, node.EventCloudInit, "phone-home: cloud-init finished: "+reason, "nocloud", now)}
			if cur.State == node.StateRegistered {
				// A VM from a template never network-booted the installer, so it skipped
				// provisioning. Step through it, but keep the generation: the machine has
				// just run cloud-init with this generation's instance-id, and a new one
				// would make it run the first boot again on its next reboot.
				gen := cur.Generation
				ev, err := cur.Transition(node.StateProvisioning, "first boot from a cloud-init seed", "nocloud", now)
				if err != nil {
					return nil, err
				}
				cur.Generation = gen
				events = append(events, ev)
			}
			if cur.State == node.StateProvisioning {
				ev, err := cur.Transition(node.StateInstalled, "cloud-init finished", "nocloud", now)
				if err != nil {
					return nil, err
				}
				events = append(events, ev)
			}
			return events, nil
		})
	case "failed":
		h.turns.Release(n.Name)
		h.log.Warn("node reports first boot failed", slog.String("node", n.Name), slog.String("reason", reason))
		err = h.inv.AppendEvents(ctx, node.NewEvent(n.Name, node.EventWarning, "phone-home: first boot failed: "+reason, "nocloud", now))
	default:
		http.Error(w, "status must be installed or failed", http.StatusBadRequest)
		return
	}
	if err != nil {
		h.log.Error("record phone-home", slog.String("node", n.Name), slog.Any("err", err))
		http.Error(w, "internal error", statusOf(err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// joinTurn answers a server's "may I join now?": 200 "go" when no other server is
// mid-join, 423 "wait" otherwise. Agents do not wait for each other and never ask.
func (h *NoCloudHandler) joinTurn(ctx context.Context, w http.ResponseWriter, r *http.Request, req noCloudRequest) {
	n := &req.node
	if _, err := h.checkKey(ctx, r, n); err != nil {
		h.refuse(ctx, w, req, statusOf(err), err)
		return
	}
	if n.Role != node.RoleServer || !n.State.MayReceiveJoinData() {
		http.Error(w, "only a server being provisioned takes a join turn", http.StatusConflict)
		return
	}
	ok, holder := h.turns.Take(n.Name)
	if !ok && h.holderIsDone(ctx, holder) {
		h.turns.Release(holder)
		ok, holder = h.turns.Take(n.Name)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
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

// holderIsDone reports whether the server holding the turn has finished joining by
// other means than phoning home: it became active in the cluster, or it was deleted or
// failed. Such a holder must not block the next server until the TTL runs out.
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
	h.mu.Lock()
	seen := h.recorded[name]
	if seen == nil {
		seen = make(map[string]bool)
		h.recorded[name] = seen
	}
	if seen[key] {
		h.mu.Unlock()
		return
	}
	seen[key] = true
	h.mu.Unlock()
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
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, s)
	if r := []rune(s); len(r) > maxReasonLen {
		s = string(r[:maxReasonLen]) + "…"
	}
	if s == "" {
		s = "(no reason given)"
	}
	return s
}
