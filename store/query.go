package store

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"

	bolt "go.etcd.io/bbolt"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"

	"github.com/bootyard/bootyard/node"
)

// NodeQuery selects one page of nodes. Zero fields do not filter.
type NodeQuery struct {
	Role  node.Role
	State node.State
	// NotState leaves out one state: the nodes page lists imported nodes, not the
	// discovered machines it shows apart.
	NotState   node.State
	NamePrefix string
	MAC        node.MAC // zero: any
	IP         netip.Addr
	Selector   labels.Selector // nil: any
	// Hardware selects by the latest inspection. No index holds it: candidates the other
	// filters leave are checked against their stored documents.
	Hardware node.HardwareFilter
	// Sort is "name" (default) or "state" (state name, then node name); Desc reverses it.
	Sort string
	Desc bool
	// Limit caps the page; 0 means DefaultPageLimit and more than MaxPageLimit is cut.
	Limit int
	// Continue is the opaque token of the previous page's NodePage.Continue.
	Continue string
	// NoTotal skips counting every match, for callers that only walk pages.
	NoTotal bool
}

// Page size bounds: a page is rendered and sent whole, so it must stay small.
const (
	DefaultPageLimit = 100
	MaxPageLimit     = 1000
)

// NodePage is one page of a query.
type NodePage struct {
	Nodes []node.Node `json:"items"`
	// Continue fetches the next page; empty on the last one.
	Continue string `json:"continue,omitempty"`
	// Total counts every node the query matches, on all pages (-1 when not counted).
	Total int `json:"total"`
}

// scan is where a query's candidates come from: one index prefix, in key order, each
// key naming a node. The query picks the narrowest one its filters allow.
type scan struct {
	bucket []byte
	prefix []byte
	name   func(k, v []byte) string
	// exact means every key in the prefix matches the whole query, so counting needs no
	// decoding.
	exact bool
}

func nameAfterPrefix(prefixLen int) func(k, v []byte) string {
	return func(k, _ []byte) string { return string(k[prefixLen:]) }
}

// ErrBadContinue means a continue token was not one this store issued for this query.
var ErrBadContinue = fmt.Errorf("%w: continue token is not valid for this query", node.ErrInvalid)

// RawNodePage is one page of a query with each node as the store holds it: the JSON
// document encoding its node.Node gives (putNode writes nothing else), so the API can send
// it on without decoding and encoding each node again, which was most of a big page's cost.
type RawNodePage struct {
	Items    []json.RawMessage
	Continue string
	Total    int
}

// QueryNodes returns one page of the nodes matching q, in q's order, and (unless
// q.NoTotal) how many match in all. It reads only the candidates of the narrowest index
// the filters allow: a state, a role, a label value or key, an IP, a MAC or a name prefix.
// Each candidate is checked against the other filters by index lookups, and only the
// nodes of the page are read. A query with none of those indexes (a selector of only
// negative terms such as "!gpu" or "rack!=r7") walks the names of every node, but counts
// its total as the positive part's count minus the excluded nodes (see countExcluded).
func (s *Store) QueryNodes(ctx context.Context, q NodeQuery) (NodePage, error) {
	nodes, cont, total, err := queryAs(ctx, s, q, func(name string, raw []byte) (node.Node, error) {
		var n node.Node
		if err := json.Unmarshal(raw, &n); err != nil {
			return n, fmt.Errorf("decode node %s: %w", name, err)
		}
		return n, nil
	})
	return NodePage{Nodes: nodes, Continue: cont, Total: total}, err
}

// QueryNodesJSON is QueryNodes with each node as its stored JSON document, copied out of
// the transaction: the list API's path, which never decodes a node it sends.
func (s *Store) QueryNodesJSON(ctx context.Context, q NodeQuery) (RawNodePage, error) {
	items, cont, total, err := queryAs(ctx, s, q, func(_ string, raw []byte) (json.RawMessage, error) {
		return bytes.Clone(raw), nil
	})
	return RawNodePage{Items: items, Continue: cont, Total: total}, err
}

// NamePage is one page of a query as node names.
type NamePage struct {
	Names    []string
	Continue string
	Total    int
}

// QueryNodeNames is QueryNodes that decodes no node: for a bulk action's selection and
// the deletion sweep, which need names only.
func (s *Store) QueryNodeNames(ctx context.Context, q NodeQuery) (NamePage, error) {
	names, cont, total, err := queryAs(ctx, s, q, func(name string, _ []byte) (string, error) { return name, nil })
	return NamePage{Names: names, Continue: cont, Total: total}, err
}

// queryAs runs q and turns each matching node into a T (on error, a zero page).
func queryAs[T any](ctx context.Context, s *Store, q NodeQuery, as func(name string, raw []byte) (T, error)) ([]T, string, int, error) {
	out := []T{}
	cont, total, err := s.query(ctx, q, func(name string, raw []byte) error {
		v, err := as(name, raw)
		out = append(out, v)
		return err
	})
	if err != nil {
		return nil, "", 0, err
	}
	return out, cont, total, nil
}

// query walks q's page and hands emit each matching node's stored bytes, which are valid
// only during the call. It returns the next page's token and the total (-1 when q.NoTotal).
func (s *Store) query(ctx context.Context, q NodeQuery, emit func(name string, raw []byte) error) (string, int, error) {
	if err := ctxErr(ctx); err != nil {
		return "", 0, err
	}
	q, after, err := q.Normalize()
	if err != nil {
		return "", 0, err
	}
	cont, total := "", -1
	err = s.db.View(func(tx *bolt.Tx) error {
		if !q.MAC.IsZero() {
			var err error
			total, err = q.byMAC(tx, emit)
			return err
		}
		sc := q.pickScan()
		c := tx.Bucket(sc.bucket).Cursor()
		var k, v []byte
		switch {
		case after != nil && !q.Desc:
			k, v = c.Seek(after)
			if bytes.Equal(k, after) {
				k, v = c.Next()
			}
		case after != nil && q.Desc:
			// The node the token names may be gone: step back to the last key before it.
			if k, v = c.Seek(after); k == nil {
				k, v = c.Last()
			}
			for k != nil && bytes.Compare(k, after) >= 0 {
				k, v = c.Prev()
			}
		case q.Desc:
			k, v = seekLast(c, sc.prefix)
		default:
			k, v = c.Seek(sc.prefix)
		}
		nodes := tx.Bucket(bucketNodes)
		m := q.matcher(tx)
		var last []byte
		for emitted := 0; k != nil && bytes.HasPrefix(k, sc.prefix); k, v = q.step(c) {
			if err := ctx.Err(); err != nil {
				return err
			}
			name := sc.name(k, v)
			if !sc.exact && !m.matches(name) {
				continue
			}
			if emitted == q.Limit {
				// One more match exists: this page ends at the last key returned.
				cont = q.ContinueToken(last)
				break
			}
			raw := nodes.Get([]byte(name))
			if raw == nil {
				return fmt.Errorf("index names node %q, which is missing", name)
			}
			if err := emit(name, raw); err != nil {
				return err
			}
			emitted++
			last = k
		}
		if q.NoTotal {
			return m.err
		}
		var err error
		if total, err = q.count(tx, sc, m); err != nil {
			return err
		}
		return m.err
	})
	if err != nil {
		return "", 0, fmt.Errorf("query nodes: %w", err)
	}
	return cont, total, nil
}

// Normalize fills q's defaults (limit, sort), refuses a sort it does not know, and
// decodes its continue token into the sort key the page starts after (nil: the start).
// Every backend pages with the same tokens: a name sort's key is the node name, a state
// sort's the state, a NUL byte and the name.
func (q NodeQuery) Normalize() (NodeQuery, []byte, error) {
	if q.Limit <= 0 {
		q.Limit = DefaultPageLimit
	}
	if q.Limit > MaxPageLimit {
		q.Limit = MaxPageLimit
	}
	if q.Sort == "" {
		q.Sort = "name"
	}
	if q.Sort != "name" && q.Sort != "state" {
		return q, nil, fmt.Errorf("sort %q: %w: must be name or state", q.Sort, node.ErrInvalid)
	}
	if q.Continue == "" {
		return q, nil, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(q.Continue)
	if err != nil || !bytes.HasPrefix(raw, []byte(q.tokenTag())) {
		return q, nil, ErrBadContinue
	}
	return q, raw[len(q.tokenTag()):], nil
}

// SortKey is n's key in q's order, the one continue tokens carry.
func (q NodeQuery) SortKey(n *node.Node) []byte {
	if q.Sort == "state" {
		return joinKey(string(n.State), n.Name)
	}
	return []byte(n.Name)
}

func (q NodeQuery) step(c *bolt.Cursor) ([]byte, []byte) {
	if q.Desc {
		return c.Prev()
	}
	return c.Next()
}

// seekLast positions c on the last key with prefix.
func seekLast(c *bolt.Cursor, prefix []byte) ([]byte, []byte) {
	if len(prefix) == 0 {
		return c.Last()
	}
	// The first key after every key with this prefix: the prefix with its last byte
	// incremented (prefixes here end in NUL or a byte below 0xff).
	end := bytes.Clone(prefix)
	end[len(end)-1]++
	if k, _ := c.Seek(end); k == nil {
		return c.Last()
	}
	return c.Prev()
}

// tokenTag ties a continue token to the query's order, so a token from a name-ordered
// query cannot be replayed against a state-ordered one and land somewhere odd.
func (q NodeQuery) tokenTag() string {
	dir := "a"
	if q.Desc {
		dir = "d"
	}
	return q.Sort + ":" + dir + ":"
}

// ContinueToken is the token of a page that ends at key.
func (q NodeQuery) ContinueToken(key []byte) string {
	return base64.RawURLEncoding.EncodeToString(append([]byte(q.tokenTag()), key...))
}

// pickScan chooses the index with the fewest candidates the filters allow: an exact IP,
// then a label value, then a state, a label key, a role, a name prefix, else all nodes.
// A state-ordered query always scans the state index, whose order it is. A hardware
// filter has no index, so with one no scan is exact: each candidate is checked.
func (q NodeQuery) pickScan() scan {
	sc := q.pickIndex()
	if !q.Hardware.IsZero() {
		sc.exact = false
	}
	return sc
}

func (q NodeQuery) pickIndex() scan {
	if q.Sort == "state" {
		if q.State != "" {
			p := joinKey(string(q.State), "")
			return scan{bucket: bucketStateIndex, prefix: p, name: nameAfterPrefix(len(p)), exact: q.onlyState()}
		}
		return scan{bucket: bucketStateIndex, name: func(k, _ []byte) string {
			_, name, _ := bytes.Cut(k, []byte{0})
			return string(name)
		}, exact: q.noFilter()}
	}
	if q.IP.IsValid() {
		a16 := q.IP.As16()
		return scan{bucket: bucketIPIndex, prefix: a16[:], name: nameAfterPrefix(16)}
	}
	var keyOnly string
	if q.Selector != nil {
		reqs, _ := q.Selector.Requirements()
		for _, r := range reqs {
			switch r.Operator() {
			case selection.Equals, selection.DoubleEquals, selection.In:
				if r.Values().Len() == 1 {
					p := joinKey(r.Key(), r.Values().List()[0], "")
					return scan{bucket: bucketLabelIndex, prefix: p, name: nameAfterPrefix(len(p)), exact: len(reqs) == 1 && q.onlySelector()}
				}
				keyOnly = r.Key()
			case selection.Exists:
				keyOnly = r.Key()
			}
		}
	}
	if q.State != "" {
		p := joinKey(string(q.State), "")
		return scan{bucket: bucketStateIndex, prefix: p, name: nameAfterPrefix(len(p)), exact: q.onlyState()}
	}
	if keyOnly != "" {
		p := joinKey(keyOnly, "")
		reqs, _ := q.Selector.Requirements()
		exact := len(reqs) == 1 && reqs[0].Operator() == selection.Exists && q.onlySelector()
		return scan{bucket: bucketLabelKeyIndex, prefix: p, name: nameAfterPrefix(len(p)), exact: exact}
	}
	if q.Role != "" {
		p := joinKey(string(q.Role), "")
		return scan{bucket: bucketRoleIndex, prefix: p, name: nameAfterPrefix(len(p)),
			exact: q.State == "" && q.NotState == "" && q.NamePrefix == "" && q.Selector == nil}
	}
	return scan{bucket: bucketNodes, prefix: []byte(q.NamePrefix), name: func(k, _ []byte) string { return string(k) },
		exact: q.Role == "" && q.State == "" && q.NotState == "" && q.Selector == nil}
}

func (q NodeQuery) noFilter() bool {
	return q.Role == "" && q.State == "" && q.NotState == "" && q.NamePrefix == "" && q.MAC.IsZero() && !q.IP.IsValid() && (q.Selector == nil || q.Selector.Empty()) &&
		q.Hardware.IsZero()
}

func (q NodeQuery) onlyState() bool {
	r := q
	r.State = ""
	return r.noFilter()
}

func (q NodeQuery) onlySelector() bool {
	r := q
	r.Selector = nil
	return r.noFilter()
}

// Matches reports whether n passes every filter of q (the continue token aside).
func (q NodeQuery) Matches(n *node.Node) bool {
	return (q.Role == "" || n.Role == q.Role) &&
		(q.State == "" || n.State == q.State) && (q.NotState == "" || n.State != q.NotState) &&
		strings.HasPrefix(n.Name, q.NamePrefix) &&
		(q.MAC.IsZero() || n.HasMAC(q.MAC)) &&
		(!q.IP.IsValid() || n.IP.Addr() == q.IP) &&
		(q.Selector == nil || q.Selector.Matches(labels.Set(n.Labels))) &&
		q.Hardware.Matches(n.Hardware)
}

// count counts every match: from the maintained counters or the keys of an exact scan
// when it can, else by taking the excluded nodes from the positive part's count (a
// selector with negative terms), else by checking each candidate through the indexes.
func (q NodeQuery) count(tx *bolt.Tx, sc scan, m *indexMatcher) (int, error) {
	if total, ok := q.countFast(tx, sc); ok {
		return total, nil
	}
	if pos, negs := q.splitNegatives(); len(negs) > 0 {
		if total, ok := pos.countFast(tx, pos.pickScan()); ok {
			return total - countExcluded(tx, pos, negs), nil
		}
	}
	total := 0
	c := tx.Bucket(sc.bucket).Cursor()
	for k, v := c.Seek(sc.prefix); k != nil && bytes.HasPrefix(k, sc.prefix); k, v = c.Next() {
		if m.matches(sc.name(k, v)) {
			total++
		}
	}
	return total, nil
}

// countFast counts q's matches without checking a node: from the state counters, or by
// counting the keys of an exact scan. ok is false when neither applies.
func (q NodeQuery) countFast(tx *bolt.Tx, sc scan) (total int, ok bool) {
	if r := q; r.NotState != "" {
		// Everything but one state is a difference of two counters.
		r.NotState = ""
		if r.noFilter() {
			for st, c := range stateCounts(tx) {
				if st != q.NotState {
					total += c
				}
			}
			return total, true
		}
	}
	if !sc.exact {
		return 0, false
	}
	switch {
	case len(sc.prefix) == 0 && (bytes.Equal(sc.bucket, bucketNodes) || bytes.Equal(sc.bucket, bucketStateIndex)):
		for _, c := range stateCounts(tx) {
			total += c
		}
		return total, true
	case bytes.Equal(sc.bucket, bucketStateIndex):
		return stateCounts(tx)[q.State], true
	}
	c := tx.Bucket(sc.bucket).Cursor()
	for k, _ := c.Seek(sc.prefix); k != nil && bytes.HasPrefix(k, sc.prefix); k, _ = c.Next() {
		total++
	}
	return total, true
}

// byMAC answers a query that names a MAC: at most one node, from the MAC index. It
// returns the total, 1 or 0.
func (q NodeQuery) byMAC(tx *bolt.Tx, emit func(name string, raw []byte) error) (int, error) {
	name := tx.Bucket(bucketMACIndex).Get(q.MAC[:])
	if name == nil || q.Continue != "" {
		return 0, nil
	}
	if m := q.matcher(tx); !m.matches(string(name)) {
		return 0, m.err
	}
	raw := tx.Bucket(bucketNodes).Get(name)
	if raw == nil {
		return 0, fmt.Errorf("MAC index names node %q, which is missing", name)
	}
	return 1, emit(string(name), raw)
}

// StateCounts counts nodes by state from the maintained counters.
func (s *Store) StateCounts(ctx context.Context) (map[node.State]int, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	var out map[node.State]int
	err := s.db.View(func(tx *bolt.Tx) error {
		out = stateCounts(tx)
		return nil
	})
	return out, err
}
