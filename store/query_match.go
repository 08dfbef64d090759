package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"

	"github.com/bootyard/bootyard/node"
)

// indexMatcher checks a node, by name, against a query's filters through the secondary
// indexes: a seek per filter instead of decoding the node's JSON, which cost ten times
// more and was most of a selector query's time at 100,000 nodes. The MAC filter is not
// here: a query naming a MAC reads the MAC index itself (byMAC). A hardware filter has
// no index: it reads the node's document, after every index check has passed.
type indexMatcher struct {
	q                           NodeQuery
	reqs                        labels.Requirements
	state, role, labelKey, ipIx *bolt.Cursor
	nodes                       *bolt.Bucket
	key                         []byte // scratch, reused for every seek
	// err is the first stored document a hardware check could not decode; the query
	// fails with it rather than quietly leaving the node out.
	err error
}

func (q NodeQuery) matcher(tx *bolt.Tx) *indexMatcher {
	m := &indexMatcher{q: q,
		state: tx.Bucket(bucketStateIndex).Cursor(), role: tx.Bucket(bucketRoleIndex).Cursor(),
		labelKey: tx.Bucket(bucketLabelKeyIndex).Cursor(), ipIx: tx.Bucket(bucketIPIndex).Cursor(),
		nodes: tx.Bucket(bucketNodes)}
	if q.Selector != nil {
		m.reqs, _ = q.Selector.Requirements()
	}
	return m
}

// matches reports whether the node named name passes every filter but the MAC.
func (m *indexMatcher) matches(name string) bool {
	q := m.q
	if !strings.HasPrefix(name, q.NamePrefix) {
		return false
	}
	if q.Role != "" && !m.has(m.role, m.nameKey(string(q.Role), name)) {
		return false
	}
	if q.State != "" && !m.has(m.state, m.nameKey(string(q.State), name)) {
		return false
	}
	if q.NotState != "" && m.has(m.state, m.nameKey(string(q.NotState), name)) {
		return false
	}
	if q.IP.IsValid() {
		a16 := q.IP.As16()
		m.key = append(append(m.key[:0], a16[:]...), name...)
		if !m.has(m.ipIx, m.key) {
			return false
		}
	}
	for i := range m.reqs {
		if !m.requirementMatches(&m.reqs[i], name) {
			return false
		}
	}
	return q.Hardware.IsZero() || m.hardwareMatches(name)
}

// hardwareKey is how a node's document holds an inspection (Node.Hardware omits an empty
// one): a document without it is never inspected and needs no decoding.
var hardwareKey = []byte(`"hardware":`)

// hardwareMatches decodes only the inspection of the node named name and checks it
// against the query's hardware filter.
func (m *indexMatcher) hardwareMatches(name string) bool {
	raw := m.nodes.Get([]byte(name))
	if raw == nil || !bytes.Contains(raw, hardwareKey) {
		return false
	}
	var doc struct {
		Hardware *node.Hardware `json:"hardware"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		if m.err == nil {
			m.err = fmt.Errorf("decode the inspection of node %s: %w", name, err)
		}
		return false
	}
	return m.q.Hardware.Matches(doc.Hardware)
}

// requirementMatches reads the node's value of r's label key from the label key index
// (key NUL name → value) and lets apimachinery decide, so every operator keeps
// Kubernetes' meaning ("rack!=r7" also matches a node without a rack label).
func (m *indexMatcher) requirementMatches(r *labels.Requirement, name string) bool {
	key := m.nameKey(r.Key(), name)
	l := oneLabel{key: r.Key()}
	if k, v := m.labelKey.Seek(key); bytes.Equal(k, key) {
		l.value, l.has = string(v), true
	}
	return r.Matches(l)
}

// nameKey builds part NUL name in the scratch buffer: the key shape of the state, role
// and label key indexes.
func (m *indexMatcher) nameKey(part, name string) []byte {
	m.key = append(append(append(m.key[:0], part...), 0), name...)
	return m.key
}

// has reports whether key is in c's bucket. A seek, not Bucket.Get: index entries have
// empty values, and an empty value must not read as a missing key.
func (m *indexMatcher) has(c *bolt.Cursor, key []byte) bool {
	k, _ := c.Seek(key)
	return bytes.Equal(k, key)
}

// oneLabel is one node's value (or absence) of the one label key a requirement reads.
type oneLabel struct {
	key, value string
	has        bool
}

func (l oneLabel) Has(key string) bool { return l.has && key == l.key }
func (l oneLabel) Get(key string) string {
	v, _ := l.Lookup(key)
	return v
}
func (l oneLabel) Lookup(key string) (string, bool) {
	if !l.Has(key) {
		return "", false
	}
	return l.value, true
}

// splitNegatives splits q's selector into q with only its positive terms and the
// negative ones ("!k", "k!=v", "k notin (…)"), which match what an index does not hold.
func (q NodeQuery) splitNegatives() (NodeQuery, []labels.Requirement) {
	if q.Selector == nil {
		return q, nil
	}
	reqs, _ := q.Selector.Requirements()
	var pos, negs []labels.Requirement
	for _, r := range reqs {
		switch r.Operator() {
		case selection.NotEquals, selection.NotIn, selection.DoesNotExist:
			negs = append(negs, r)
		default:
			pos = append(pos, r)
		}
	}
	q.Selector = nil
	if len(pos) > 0 {
		q.Selector = labels.NewSelector().Add(pos...)
	}
	return q, negs
}

// countExcluded counts the nodes that pos matches and some negative term excludes. The
// nodes a term excludes are an index prefix ("!gpu": the gpu key's entries; "rack!=r7"
// and "rack notin (r7)": the rack=r7 entries), so a negative selector's total costs what
// it excludes, not a walk of the inventory. A node excluded by several terms is counted
// at the first.
func countExcluded(tx *bolt.Tx, pos NodeQuery, negs []labels.Requirement) int {
	m := pos.matcher(tx)
	excluded := 0
	for i := range negs {
		r := &negs[i]
		var bucket []byte
		var prefixes [][]byte
		if r.Operator() == selection.DoesNotExist {
			bucket, prefixes = bucketLabelKeyIndex, [][]byte{joinKey(r.Key(), "")}
		} else {
			bucket = bucketLabelIndex
			for _, v := range r.Values().UnsortedList() {
				prefixes = append(prefixes, joinKey(r.Key(), v, ""))
			}
		}
		c := tx.Bucket(bucket).Cursor()
		for _, prefix := range prefixes {
			for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
				name := string(k[len(prefix):])
				if m.matches(name) && m.passes(negs[:i], name) {
					excluded++
				}
			}
		}
	}
	return excluded
}

// passes reports whether the node named name matches every one of reqs.
func (m *indexMatcher) passes(reqs []labels.Requirement, name string) bool {
	for i := range reqs {
		if !m.requirementMatches(&reqs[i], name) {
			return false
		}
	}
	return true
}
