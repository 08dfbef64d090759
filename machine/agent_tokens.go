package machine

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/bootyard/bootyard/agentapi"
	"github.com/bootyard/bootyard/node"
)

// DefaultAgentTokenTTL is how long a per-boot token lives without being used: a long
// wipe keeps its token alive by reporting progress, an abandoned one dies.
const DefaultAgentTokenTTL = 2 * time.Hour

// errAgentToken is every reason a token does not authenticate (unknown, revoked,
// expired): the agent needs only to know it must reboot for a new one.
var errAgentToken = errors.New("agent token unknown, expired or revoked: reboot the machine to get a new one")

// errAgentAddress is a valid token from another address than the one it was minted to.
var errAgentAddress = errors.New("agent token presented from another address than the one it was issued to")

// tokenKey is a token's SHA-256: the table is keyed by it, so a lookup's timing
// depends on a hash of the secret, never on the secret's bytes.
type tokenKey [sha256.Size]byte

// agentGrant is what one token allows: one action on one node at one generation, from
// the one address it was minted to.
type agentGrant struct {
	node       string
	addr       netip.Addr
	action     agentapi.Action
	generation int
	expires    time.Time
	started    bool      // the agent fetched its task
	lastSeen   time.Time // the agent's last authenticated call
	phase      string    // the last progress phase reported
	steps      map[string]int
}

// AgentTokens holds the per-boot tokens, in memory only: a restart revokes them all,
// and the agent then reboots into a new script and a new token.
type AgentTokens struct {
	ttl time.Duration
	now func() time.Time

	mu     sync.Mutex
	grants map[tokenKey]*agentGrant
	byNode map[string]tokenKey
	// restarts counts, per node, agents that fetched their task and were replaced by a
	// new boot without reporting done or failed: a crash or a reset mid-task.
	restarts map[string]agentRestarts
}

// agentRestarts is a node's count of unreported agent restarts at one generation.
type agentRestarts struct {
	generation int
	action     agentapi.Action
	count      int
}

// NewAgentTokens builds an empty table; ttl 0 means DefaultAgentTokenTTL, now nil the
// wall clock.
func NewAgentTokens(ttl time.Duration, now func() time.Time) *AgentTokens {
	if ttl <= 0 {
		ttl = DefaultAgentTokenTTL
	}
	if now == nil {
		now = func() time.Time { return time.Now().UTC() }
	}
	return &AgentTokens{ttl: ttl, now: now, grants: make(map[tokenKey]*agentGrant), byNode: make(map[string]tokenKey),
		restarts: make(map[string]agentRestarts)}
}

// mint makes a new token for n and action, bound to n's name and generation and to
// addr, the address the script went to. The node's previous token, if any, is revoked:
// only the newest script's boot may act. It also says how many agents of this node,
// action and generation started their task and were replaced without reporting (this
// boot's included).
func (t *AgentTokens) mint(n node.Node, action agentapi.Action, addr netip.Addr) (node.Secret, int, error) {
	if !addr.IsValid() {
		return "", 0, fmt.Errorf("mint agent token for %s: no address to bind it to: %w", n.Name, node.ErrInvalid)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", 0, fmt.Errorf("mint agent token for %s: %w", n.Name, err)
	}
	tok := hex.EncodeToString(raw[:])
	key := sha256.Sum256([]byte(tok))
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweepLocked(now)
	r := t.restarts[n.Name]
	if r.generation != n.Generation || r.action != action {
		r = agentRestarts{generation: n.Generation, action: action}
	}
	if oldKey, ok := t.byNode[n.Name]; ok {
		if old := t.grants[oldKey]; old != nil && old.started && old.generation == n.Generation && old.action == action {
			r.count++
		}
		delete(t.grants, oldKey)
	}
	t.restarts[n.Name] = r
	t.grants[key] = &agentGrant{node: n.Name, addr: addr.Unmap(), action: action, generation: n.Generation, expires: now.Add(t.ttl),
		steps: make(map[string]int)}
	t.byNode[n.Name] = key
	return node.Secret(tok), r.count, nil
}

// Revoke ends the node's token, if it has one.
func (t *AgentTokens) Revoke(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if key, ok := t.byNode[name]; ok {
		delete(t.grants, key)
		delete(t.byNode, name)
	}
}

// use authenticates a token presented from addr and marks it used (which keeps it alive
// for another TTL). It returns a copy of the grant and the key to address it by. A token
// from another address is refused but left alone: the real agent keeps it.
func (t *AgentTokens) use(token string, addr netip.Addr) (agentGrant, tokenKey, error) {
	key := sha256.Sum256([]byte(token))
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	g, ok := t.grants[key]
	if !ok || len(token) != 64 {
		return agentGrant{}, key, errAgentToken
	}
	if !now.Before(g.expires) {
		delete(t.grants, key)
		delete(t.byNode, g.node)
		return agentGrant{}, key, errAgentToken
	}
	if addr.Unmap() != g.addr {
		return agentGrant{}, key, errAgentAddress
	}
	g.expires = now.Add(t.ttl)
	g.lastSeen = now
	return *g, key, nil
}

// markStarted records that the agent fetched its task.
func (t *AgentTokens) markStarted(key tokenKey) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if g, ok := t.grants[key]; ok {
		g.started = true
	}
}

// progressStep reports whether a progress report at step (a 5 % bucket) of phase is
// new enough to record, and remembers it: one event per step per phase.
func (t *AgentTokens) progressStep(key tokenKey, phase string, step int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	g, ok := t.grants[key]
	if !ok {
		return false
	}
	g.phase = phase
	last, seen := g.steps[phase]
	if seen && step <= last {
		return false
	}
	g.steps[phase] = step
	return true
}

// revokeKey ends one token (done, failed), leaving a newer one of the node alone.
func (t *AgentTokens) revokeKey(key tokenKey) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if g, ok := t.grants[key]; ok {
		delete(t.grants, key)
		if t.byNode[g.node] == key {
			delete(t.byNode, g.node)
		}
		// The agent reported (or was given up on): the next boot starts a fresh count.
		delete(t.restarts, g.node)
	}
}

// silentAgent is a started agent that stopped calling.
type silentAgent struct {
	key   tokenKey
	grant agentGrant
}

// silent lists started agents whose last call is older than limit.
func (t *AgentTokens) silent(limit time.Duration) []silentAgent {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []silentAgent
	for key, g := range t.grants {
		if g.started && now.Sub(g.lastSeen) > limit {
			out = append(out, silentAgent{key: key, grant: *g})
		}
	}
	return out
}

// sweepLocked drops expired tokens, so machines that never booted do not pile up.
func (t *AgentTokens) sweepLocked(now time.Time) {
	for key, g := range t.grants {
		if !now.Before(g.expires) {
			delete(t.grants, key)
			if t.byNode[g.node] == key {
				delete(t.byNode, g.node)
			}
		}
	}
}
