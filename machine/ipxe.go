package machine

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bootyard/bootyard/agentapi"
	"github.com/bootyard/bootyard/ipxe"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// IPXEInventory is what the iPXE endpoints need from the store.
type IPXEInventory interface {
	NewNodeCache() store.VersionedNodes
	RecordBoot(ctx context.Context, mac node.MAC, seen node.BootInfo) error
	UpdateNode(ctx context.Context, name string, fn store.UpdateFunc) (node.Node, error)
	AppendMACEvents(ctx context.Context, events ...store.MACEvent) (dropped int, err error)
	AppendEvents(ctx context.Context, events ...node.Event) error
}

// IPXEHandler serves GET /boot.ipxe?mac=… (the per-machine script) and GET /ipxe/NAME
// (the iPXE binaries, for UEFI HTTP boot).
//
// A script request costs one read transaction; its boot event and boot info are queued
// to a single background writer that commits them in batches, so the request never
// waits for an fsync. Only state changes (registered → provisioning) and the first boot
// of an unknown machine are written before the answer, because the answer depends on them.
// Local-boot and waiting scripts are rendered once per stored version of the node (and
// platform): waiting machines poll, and a rack booting at once asks again and again.
// Install and wipe scripts are rendered every time: they may carry per-boot data.
type IPXEHandler struct {
	render ScriptRenderer
	// label and noun name what is served in events and reasons: "iPXE" "script", or
	// "GRUB" "config"; source is the events' source, "ipxe" or "grub".
	label, noun, source string
	inv                 IPXEInventory
	nodes               store.VersionedNodes
	bins                *ipxe.Binaries
	identity            *Identity
	log                 *slog.Logger
	now                 func() time.Time
	bufs                sync.Pool // *bytes.Buffer
	writer              *bootWriter
	agent               AgentBooter // nil: install and wipe scripts stay placeholders
	// observe is told the node state each served script was chosen for (metrics).
	observe func(node.State)
	// inspectDiscovered requests an inspection of each unknown machine's first boot.
	inspectDiscovered bool
	// refusals keeps one event per node and foreign address, however often it asks.
	refusals *onceKeys

	mu      sync.RWMutex
	scripts map[node.MAC]renderedScript
}

// renderedScript is a script as served for one version of a node.
type renderedScript struct {
	version  uint64
	platform ipxe.Platform // as the request said it, before falling back to the record
	arch     string
	body     []byte
	reason   string // the boot event's reason
}

// maxCachedScripts bounds the script cache; past it the cache starts over. Machines that
// boot are bounded by the inventory, so only a flood of made-up MACs reaches it.
const maxCachedScripts = 1 << 16

// AgentBooter decides what an install or wipe script boots (the agent with a fresh
// per-boot token, or an installer image's kernel); *Agent is one.
type AgentBooter interface {
	BootTarget(ctx context.Context, n node.Node, mac node.MAC, remote netip.Addr) (ipxe.InstallTarget, error)
	// CanInstall tells whether an install could start now (an image resolves); a node
	// that cannot install stays registered instead of entering provisioning for nothing.
	CanInstall(ctx context.Context, n node.Node) error
}

// ScriptRenderer renders a node's boot script: *ipxe.Renderer for iPXE, *grub.Renderer
// for the Secure Boot chain's GRUB.
type ScriptRenderer interface {
	Render(w io.Writer, s ipxe.Script) error
}

// IPXEConfig is what the script and binary endpoints need.
type IPXEConfig struct {
	Scripts   ScriptRenderer
	Inventory IPXEInventory
	// Identity decides whether a request for an install or wipe script comes from the
	// node itself; only then is a per-boot token minted and the node's state changed.
	Identity *Identity
	// Binaries may be nil, and then /ipxe/ answers 404.
	Binaries *ipxe.Binaries
	// Agent decides what install and wipe scripts boot; nil leaves them placeholders.
	Agent AgentBooter
	// Observe, if set, is told the node state of every script served (metrics).
	Observe func(node.State)
	// InspectDiscovered inspects every unknown machine on its first network boot (then
	// it reboots and waits for import), so the operator sees its hardware at once.
	InspectDiscovered bool
	Logger            *slog.Logger
}

// NewIPXEHandler builds the handler and starts its event writer; Close stops it.
func NewIPXEHandler(cfg IPXEConfig) (*IPXEHandler, error) {
	if cfg.Scripts == nil || cfg.Inventory == nil || cfg.Identity == nil {
		return nil, errors.New("machine: the iPXE handler needs a script renderer, an inventory and the identity check")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With(slog.String("service", "ipxe"))
	h := &IPXEHandler{render: cfg.Scripts, label: "iPXE", noun: "script", source: "ipxe", inv: cfg.Inventory, nodes: cfg.Inventory.NewNodeCache(), bins: cfg.Binaries,
		identity: cfg.Identity, agent: cfg.Agent, observe: cfg.Observe, inspectDiscovered: cfg.InspectDiscovered, log: log, refusals: newOnceKeys(maxRefusalKeys),
		now: func() time.Time { return time.Now().UTC() }, scripts: make(map[node.MAC]renderedScript)}
	h.bufs.New = func() any { return new(bytes.Buffer) }
	h.writer = newBootWriter(cfg.Inventory, log)
	return h, nil
}

// Flush waits until every event and boot record queued so far is written.
func (h *IPXEHandler) Flush() { h.writer.flush() }

// Close writes what is queued and stops the writer. Call it before closing the store.
func (h *IPXEHandler) Close() { h.writer.close() }

// Dropped counts boot events lost because the writer's queue was full.
func (h *IPXEHandler) Dropped() uint64 { return h.writer.dropped.Load() }

func (h *IPXEHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/boot.ipxe":
		h.serveScript(w, r)
	case strings.HasPrefix(r.URL.Path, "/ipxe/"):
		h.serveBinary(w, r)
	default:
		http.NotFound(w, r)
	}
}

// knownBuildArch lists iPXE's ${buildarch} values; anything else is not recorded.
var knownBuildArch = map[string]bool{"i386": true, "x86_64": true, "arm32": true, "arm64": true,
	"riscv32": true, "riscv64": true, "loong64": true}

func (h *IPXEHandler) serveScript(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		// HEAD would have the side effects of GET (the install transition): refuse it.
		w.Header().Set("Allow", http.MethodGet)
		plainError(w, http.StatusMethodNotAllowed, "only GET: fetching the script has side effects")
		return
	}
	rawQuery := r.URL.RawQuery
	rawMAC := queryValue(rawQuery, "mac")
	if rawMAC == "" {
		plainError(w, http.StatusBadRequest, "missing mac: want /boot.ipxe?mac=aa-bb-cc-dd-ee-ff (iPXE: ?mac=${mac:hexhyp})")
		return
	}
	mac, err := node.ParseMAC(rawMAC)
	if err != nil || mac.IsZero() {
		plainError(w, http.StatusBadRequest, "bad mac "+strconv.Quote(truncate(rawMAC, 40))+": want a 48-bit hardware address such as aa-bb-cc-dd-ee-ff")
		return
	}
	platform := ipxe.ParsePlatform(queryValue(rawQuery, "platform"))
	buildarch := queryValue(rawQuery, "arch")
	if !knownBuildArch[buildarch] {
		buildarch = ""
	}
	body, code := h.answer(r.Context(), mac, peerAddr(r), platform, buildarch, h.bootInfo(r, platform, buildarch))
	if code != http.StatusOK {
		plainError(w, code, string(body))
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/plain; charset=utf-8")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(body); err != nil {
		h.log.Debug("write ipxe script", slog.String("mac", mac.String()), slog.Any("err", err))
	}
}

// answer is the script for mac as requested from remote, whatever carried the request
// (HTTP for iPXE, TFTP for GRUB): the body and 200, or an error message and its status.
// Every rule lives here: the identity check before secrets, the install transition,
// the boot record and event.
func (h *IPXEHandler) answer(ctx context.Context, mac node.MAC, remote netip.Addr, platform ipxe.Platform, buildarch string, seen node.BootInfo) ([]byte, int) {
	n, version, err := h.nodes.NodeByMAC(ctx, mac)
	recorded := true
	// One queued write per request: the boot record (known machines) and the event.
	queued := bootWrite{mac: mac, seen: seen}
	switch {
	case errors.Is(err, node.ErrNotFound):
		// The first boot of a machine nobody imported: record it before answering, so
		// the operator sees it at once and can import it while it waits.
		if err := h.inv.RecordBoot(ctx, mac, seen); err != nil {
			recorded = false
			h.log.Error("record discovered machine", slog.String("mac", mac.String()), slog.Any("err", err))
		}
		n = node.Node{Name: node.DefaultName(mac), MACs: []node.MAC{mac}, State: node.StateDiscovered}
		if recorded && h.inspectDiscovered && h.agent != nil {
			n = h.inspectNew(ctx, n)
		}
	case err != nil:
		h.log.Error("look up node", slog.String("mac", mac.String()), slog.Any("err", err))
		return []byte("inventory unavailable, try again"), http.StatusInternalServerError
	default:
		queued.record = true
	}

	if carriesSecrets(n) {
		d, err := h.identity.Check(ctx, n, remote)
		if err != nil {
			h.log.Error("identity check", slog.String("node", n.Name), slog.Any("err", err))
			return []byte("inventory unavailable, try again"), http.StatusInternalServerError
		}
		if !d.Trusted {
			// Not the node, or not provably: a script without a token, and no state
			// change, no boot record, no restart count that a stranger could drive.
			h.refused(ctx, n, remote, d)
			return h.waitScript(n, mac, platform, "this address is not verified as node "+n.Name+": see the events of the node")
		}
	} else if queued.record {
		// The script holds no secret, but the boot record (last seen, address, firmware)
		// and the boot event are the node's own: a request from an address Bootyard
		// knows is not the node's gets the script and moves neither. An unverifiable
		// address (no DHCP of ours) still counts, or such sites would see no boots.
		d, err := h.identity.Check(ctx, n, remote)
		if err != nil {
			h.log.Error("identity check", slog.String("node", n.Name), slog.Any("err", err))
		}
		if err != nil || d.Verdict == Foreign {
			queued.record, recorded = false, false
		}
	}
	inspecting := scriptKind(n) == ipxe.KindInspect
	if n.State == node.StateRegistered && !inspecting && h.agent != nil {
		if err := h.agent.CanInstall(ctx, n); err != nil {
			h.log.Warn("cannot start the install", slog.String("node", n.Name), slog.Any("err", err))
			h.writer.enqueue(queued)
			return h.waitScript(n, mac, platform, "cannot start the install: "+err.Error())
		}
	}
	if n.State == node.StateRegistered && !inspecting {
		if n, err = h.beginInstall(ctx, mac, n); err != nil {
			h.log.Error("start install", slog.String("node", n.Name), slog.String("mac", mac.String()), slog.Any("err", err))
			h.writer.enqueue(queued)
			return []byte("could not record the install, try again"), http.StatusInternalServerError
		}
		version = 0 // the node just changed: render afresh
	}
	if k := scriptKind(n); k != ipxe.KindLocalBoot && k != ipxe.KindWait {
		version = 0 // may carry per-boot data: never cached
	}
	rs, ok := h.cachedScript(mac, version, platform, buildarch)
	if !ok {
		if rs, err = h.renderScript(ctx, mac, remote, n, platform, buildarch); err != nil {
			h.log.Error("render boot script", slog.String("node", n.Name), slog.String("kind", h.label), slog.Any("err", err))
			h.writer.enqueue(queued)
			return []byte("could not render the script"), http.StatusInternalServerError
		}
		if version != 0 {
			rs.version = version
			h.storeScript(mac, rs)
		}
	}
	if h.observe != nil {
		h.observe(n.State)
	}
	if recorded {
		queued.event = node.NewEvent(n.Name, node.EventBoot, rs.reason, h.source, h.now())
		h.writer.enqueue(queued)
	}
	return rs.body, http.StatusOK
}

func (h *IPXEHandler) cachedScript(mac node.MAC, version uint64, p ipxe.Platform, arch string) (renderedScript, bool) {
	if version == 0 {
		return renderedScript{}, false
	}
	h.mu.RLock()
	rs, ok := h.scripts[mac]
	h.mu.RUnlock()
	if !ok || rs.version != version || rs.platform != p || rs.arch != arch {
		return renderedScript{}, false
	}
	return rs, true
}

func (h *IPXEHandler) storeScript(mac node.MAC, rs renderedScript) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.scripts) >= maxCachedScripts {
		h.scripts = make(map[node.MAC]renderedScript)
	}
	h.scripts[mac] = rs
}

// renderScript renders n's script; p is the platform the request named, if any.
func (h *IPXEHandler) renderScript(ctx context.Context, mac node.MAC, remote netip.Addr, n node.Node, p ipxe.Platform, buildarch string) (renderedScript, error) {
	script := ipxe.Script{Kind: scriptKind(n), MAC: mac, Name: n.Name, State: n.State,
		Role: n.Role, Image: n.Image, Generation: n.Generation, Platform: p}
	if script.Platform == ipxe.PlatformUnknown {
		script.Platform = ipxe.PlatformOf(n.Boot)
	}
	if n.State == node.StateFailed {
		script.Reason = "failed: " + n.StateReason
	}
	if h.agent != nil && (script.Kind == ipxe.KindInstall || script.Kind == ipxe.KindWipe || script.Kind == ipxe.KindInspect) {
		target, err := h.agent.BootTarget(ctx, n, mac, remote)
		if err != nil {
			// Nothing to boot yet (no image): wait and ask again rather than boot a disk
			// that is half-written or about to be wiped.
			h.log.Warn("nothing to boot for the node's state", slog.String("node", n.Name), slog.Any("err", err))
			script.Kind, script.Reason = ipxe.KindWait, "cannot boot the "+string(script.Kind)+": "+err.Error()
		}
		script.Install = target
	}
	buf := h.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer h.bufs.Put(buf)
	if err := h.render.Render(buf, script); err != nil {
		return renderedScript{}, err
	}
	return renderedScript{
		platform: p,
		arch:     buildarch,
		body:     bytes.Clone(buf.Bytes()),
		reason:   h.label + " " + h.noun + " served: " + string(script.Kind) + " (" + platformName(script.Platform) + archSuffix(buildarch) + ")",
	}, nil
}

// carriesSecrets: the states whose script boots the agent with a per-boot token (or an
// installer pointed at join data), and where serving it moves the node.
func carriesSecrets(n node.Node) bool {
	k := scriptKind(n)
	return n.State == node.StateRegistered || k == ipxe.KindInstall || k == ipxe.KindWipe || k == ipxe.KindInspect
}

// refused records, once per node and address, that a script with secrets was withheld.
func (h *IPXEHandler) refused(ctx context.Context, n node.Node, remote netip.Addr, d Decision) {
	attrs := []any{slog.String("node", n.Name), slog.String("remote", remote.String()), slog.String("why", d.Why)}
	if !h.refusals.first(n.Name + "|" + remote.String() + "|" + strconv.Itoa(n.Generation)) {
		// Waiting machines poll every few seconds: one warning and one event are enough.
		h.log.Debug("install or wipe script withheld again", attrs...)
		return
	}
	h.log.Warn("install or wipe script withheld", attrs...)
	ev := node.NewEvent(n.Name, node.EventWarning, h.label+" "+string(scriptKind(n))+" "+h.noun+" withheld from "+remote.String()+": "+d.Why, h.source, h.now())
	if err := h.inv.AppendEvents(ctx, ev); err != nil {
		h.log.Error("record withheld script", slog.String("node", n.Name), slog.Any("err", err))
	}
}

// waitScript is a wait script with the reason, for a node that has nothing to boot.
func (h *IPXEHandler) waitScript(n node.Node, mac node.MAC, p ipxe.Platform, reason string) ([]byte, int) {
	script := ipxe.Script{Kind: ipxe.KindWait, MAC: mac, Name: n.Name, State: n.State, Role: n.Role,
		Image: n.Image, Generation: n.Generation, Platform: p, Reason: reason}
	var buf bytes.Buffer
	if err := h.render.Render(&buf, script); err != nil {
		h.log.Error("render wait script", slog.String("node", n.Name), slog.String("kind", h.label), slog.Any("err", err))
		return []byte("could not render the script"), http.StatusInternalServerError
	}
	return buf.Bytes(), http.StatusOK
}

// errStateChanged aborts the install transition when the node left registered between
// the read and the write; the handler then answers for the state it is in now.
var errStateChanged = errors.New("state changed")

// beginInstall moves a registered node to provisioning as its install script is served.
func (h *IPXEHandler) beginInstall(ctx context.Context, mac node.MAC, n node.Node) (node.Node, error) {
	at := h.now()
	updated, err := h.inv.UpdateNode(ctx, n.Name, func(cur *node.Node) ([]node.Event, error) {
		if cur.State != node.StateRegistered {
			return nil, errStateChanged
		}
		ev, err := cur.Transition(node.StateProvisioning, h.label+" install "+h.noun+" served", h.source, at)
		if err != nil {
			return nil, err
		}
		return []node.Event{ev}, nil
	})
	if errors.Is(err, errStateChanged) || errors.Is(err, node.ErrNotFound) {
		// Changed or renamed underneath: answer for what the record says now.
		n, _, err := h.nodes.NodeByMAC(ctx, mac)
		return n, err
	}
	return updated, err
}

func (h *IPXEHandler) bootInfo(r *http.Request, p ipxe.Platform, buildarch string) node.BootInfo {
	seen := node.BootInfo{UserClass: "iPXE", LastSeen: h.now()}
	if code, ok := ipxe.ArchCode(p, buildarch); ok {
		seen.Arch = code
		seen.Firmware = "bios"
		if p == ipxe.PlatformEFI {
			seen.Firmware = "uefi"
		}
	}
	if a := peerAddr(r); a.IsValid() {
		seen.IP = a.String()
	}
	return seen
}

func (h *IPXEHandler) serveBinary(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		plainError(w, http.StatusMethodNotAllowed, "only GET and HEAD")
		return
	}
	// One more slash is shim's: under UEFI HTTP boot it asks for GRUB at its own URL's
	// directory joined with "/grubx64.efi", which doubles the slash (/ipxe//grubx64.efi).
	// The name is still checked whole below.
	name := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/ipxe/"), "/")
	if h.bins == nil || ipxe.CheckName(name) != nil {
		plainError(w, http.StatusNotFound, "not an iPXE binary served here")
		return
	}
	f, _, err := h.bins.Open(name)
	if err != nil {
		if !errors.Is(err, node.ErrNotFound) {
			h.log.Error("open ipxe binary", slog.String("file", name), slog.Any("err", err))
		}
		plainError(w, http.StatusNotFound, "not an iPXE binary served here")
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		plainError(w, http.StatusInternalServerError, "stat failed")
		return
	}
	// Set the type so ServeContent does not sniff; firmware does not care, curl users do.
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, name, fi.ModTime(), f)
}

// queryValue finds key in a raw query without building url.Values: this runs for every
// poll of every waiting machine. Only escaped values pay for unescaping.
func queryValue(rawQuery, key string) string {
	for rawQuery != "" {
		var pair string
		pair, rawQuery, _ = strings.Cut(rawQuery, "&")
		k, v, _ := strings.Cut(pair, "=")
		if k != key {
			continue
		}
		if strings.ContainsAny(v, "%+") {
			u, err := url.QueryUnescape(v)
			if err != nil {
				return v // not a MAC, platform or arch either way: refused downstream
			}
			return u
		}
		return v
	}
	return ""
}

func plainError(w http.ResponseWriter, code int, msg string) {
	// iPXE prints the body of a failed fetch, so it says what to fix.
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(msg + "\n"))
}

func platformName(p ipxe.Platform) string {
	if p == ipxe.PlatformUnknown {
		return "platform unknown"
	}
	return string(p)
}

func archSuffix(a string) string {
	if a == "" {
		return ""
	}
	return " " + a
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// inspectNew requests the inspection of a machine's first boot (InspectDiscovered): it
// reboots afterwards, into the script that waits for its import. Failing to record the
// request only means the machine waits uninspected.
func (h *IPXEHandler) inspectNew(ctx context.Context, n node.Node) node.Node {
	stored, err := h.inv.UpdateNode(ctx, n.Name, func(cur *node.Node) ([]node.Event, error) {
		if cur.State != node.StateDiscovered || cur.Hardware != nil || cur.Inspect != nil {
			return nil, nil
		}
		ev, err := cur.RequestInspection(agentapi.RebootAfterInspect, "ipxe", h.now())
		return []node.Event{ev}, err
	})
	if err != nil {
		h.log.Warn("request the inspection of a new machine", slog.String("node", n.Name), slog.Any("err", err))
		return n
	}
	return stored
}
