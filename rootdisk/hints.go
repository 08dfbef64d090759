// Package rootdisk parses root-disk hints in the syntax OpenStack Ironic's users know
// and selects the one disk they name. Pure Go and a leaf beside agentapi: the server
// checks hints at the edge with it, the installer agent selects its disk with it.
package rootdisk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// ErrSyntax is a hint that does not parse; callers map it to their own "invalid" kind.
var ErrSyntax = errors.New("bad root-disk hint")

// Keys are the hint keys, as Ironic spells them.
var Keys = []string{"by_path", "model", "name", "rotational", "serial", "size", "vendor", "wwn"}

// Limits keep a stored hint small: a disk is named by a few of its properties.
const (
	maxTerms    = 16
	maxValueLen = 256
)

// op is a comparison.
type op string

const (
	opEq  op = "=="
	opNe  op = "!="
	opGe  op = ">="
	opLe  op = "<="
	opGt  op = ">"
	opLt  op = "<"
	opIn  op = "<in>" // substring, Ironic's <in>
	opAny op = "<or>" // one of several values, Ironic's <or>
)

// term is one hint: key, comparison, value.
type term struct {
	key   string
	op    op
	value string   // normalised: the compared form of a string, the canonical size text
	any   []string // opAny's normalised values
	size  float64  // size: the number, in unit
	unit  int64    // size: bytes per unit
	rot   bool     // rotational
}

// Hints select a disk: every term must hold. The zero value selects nothing in
// particular (the smallest disk that fits). Its text form is Parse's input in canonical
// order, e.g. "serial==S123,size>=400G".
type Hints struct {
	terms []term
}

// IsZero says whether h has no hint.
func (h Hints) IsZero() bool { return len(h.terms) == 0 }

// Parse reads hints written as comma-separated terms KEY OP VALUE:
//
//	serial=S123                 (= is ==; strings compare case-insensitively, trimmed)
//	size>=400G                  (==, !=, >=, <=, >, <; a bare number is GiB as in Ironic;
//	                             K M G T P are powers of 1024, KB MB GB TB of 1000)
//	model=<in> SAMSUNG          (substring)   vendor=<or> ATA <or> HGST   (one of)
//	rotational=false  name=/dev/sda  by_path=pci-0000:00:1f.2-ata-1  wwn=0x5000c500a1b2c3d4
//
// An empty string is no hint.
func Parse(s string) (Hints, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Hints{}, nil
	}
	parts := strings.Split(s, ",")
	if len(parts) > maxTerms {
		return Hints{}, fmt.Errorf("%w: %d terms, at most %d", ErrSyntax, len(parts), maxTerms)
	}
	var h Hints
	for _, p := range parts {
		key, o, value, err := splitTerm(p)
		if err != nil {
			return Hints{}, err
		}
		t, err := newTerm(key, o, value)
		if err != nil {
			return Hints{}, err
		}
		h.terms = append(h.terms, t)
	}
	h.sort()
	return h, nil
}

// splitTerm cuts "key OP value" at the first operator character.
func splitTerm(p string) (string, op, string, error) {
	p = strings.TrimSpace(p)
	i := strings.IndexAny(p, "=!<>")
	if i <= 0 {
		return "", "", "", fmt.Errorf("%w: %q: want KEY=VALUE or KEY>=VALUE ... (keys: %s)", ErrSyntax, p, strings.Join(Keys, ", "))
	}
	key := strings.ToLower(strings.TrimSpace(p[:i]))
	rest := strings.TrimSpace(p[i:])
	// key=<in> x and key=<or> a <or> b as Ironic writes them, or without the =.
	if after, ok := strings.CutPrefix(rest, "="); ok && !strings.HasPrefix(after, "=") {
		if v := strings.TrimSpace(after); strings.HasPrefix(v, string(opIn)) || strings.HasPrefix(v, string(opAny)) {
			rest = v
		}
	}
	if after, ok := strings.CutPrefix(rest, string(opIn)); ok {
		return key, opIn, strings.TrimSpace(after), nil
	}
	if strings.HasPrefix(rest, string(opAny)) {
		return key, opAny, rest, nil // newTerm splits the list
	}
	for _, c := range []op{opEq, opNe, opGe, opLe, opGt, opLt, "="} {
		if after, ok := strings.CutPrefix(rest, string(c)); ok {
			if c == "=" {
				c = opEq
			}
			return key, c, strings.TrimSpace(after), nil
		}
	}
	return "", "", "", fmt.Errorf("%w: %q: no comparison", ErrSyntax, p)
}

func newTerm(key string, o op, value string) (term, error) {
	if len(value) > maxValueLen {
		return term{}, fmt.Errorf("%w: %s: value longer than %d bytes", ErrSyntax, key, maxValueLen)
	}
	if strings.IndexFunc(value, func(r rune) bool { return unicode.IsControl(r) || r == unicode.ReplacementChar }) >= 0 {
		return term{}, fmt.Errorf("%w: %s: value has control characters or bad UTF-8", ErrSyntax, key)
	}
	if value == "" {
		return term{}, fmt.Errorf("%w: %s: empty value", ErrSyntax, key)
	}
	t := term{key: key, op: o}
	switch key {
	case "size":
		if o == opIn || o == opAny {
			return term{}, fmt.Errorf("%w: size takes ==, !=, >=, <=, > or <", ErrSyntax)
		}
		n, unit, err := parseSize(value)
		if err != nil {
			return term{}, err
		}
		t.size, t.unit = n, unit
		t.value = strconv.FormatFloat(n, 'f', -1, 64) + unitName(unit)
	case "rotational":
		if o != opEq && o != opNe {
			return term{}, fmt.Errorf("%w: rotational takes == or !=", ErrSyntax)
		}
		b, err := strconv.ParseBool(strings.ToLower(value))
		if err != nil {
			return term{}, fmt.Errorf("%w: rotational=%q: want true or false", ErrSyntax, value)
		}
		t.rot, t.value = b, strconv.FormatBool(b)
	case "serial", "model", "vendor", "wwn", "name", "by_path":
		if o != opEq && o != opNe && o != opIn && o != opAny {
			return term{}, fmt.Errorf("%w: %s takes ==, !=, <in> or <or>", ErrSyntax, key)
		}
		if strings.Contains(value, ",") && o != opAny {
			return term{}, fmt.Errorf("%w: %s: a value cannot hold a comma", ErrSyntax, key)
		}
		if o == opAny {
			for _, v := range strings.Split(value, string(opAny))[1:] {
				v = normalise(key, v)
				if v == "" {
					return term{}, fmt.Errorf("%w: %s: empty <or> value", ErrSyntax, key)
				}
				if err := plainValue(key, v); err != nil {
					return term{}, err
				}
				t.any = append(t.any, v)
			}
			parts := make([]string, len(t.any))
			for i, v := range t.any {
				parts[i] = string(opAny) + " " + v
			}
			t.value = strings.Join(parts, " ")
			break
		}
		t.value = normalise(key, value)
		if t.value == "" {
			return term{}, fmt.Errorf("%w: %s: empty value", ErrSyntax, key)
		}
		if err := plainValue(key, t.value); err != nil {
			return term{}, err
		}
	default:
		return term{}, fmt.Errorf("%w: unknown key %q (keys: %s)", ErrSyntax, key, strings.Join(Keys, ", "))
	}
	return t, nil
}

// plainValue refuses a compared value that holds an operator word: normalising lowers
// case, so "<Or>" would turn into "<or>" and the canonical form would read back as
// another list.
func plainValue(key, v string) error {
	l := strings.ToLower(v)
	if strings.Contains(l, string(opAny)) || strings.Contains(l, string(opIn)) {
		return fmt.Errorf("%w: %s: a value cannot hold <in> or <or>", ErrSyntax, key)
	}
	return nil
}

// normalise is the form a string hint and a disk's property are compared in: model,
// vendor and serial as sysfs pads them, case aside; a WWN without any leading 0x; a name and a
// by-path as device paths.
func normalise(key, v string) string {
	v = strings.TrimSpace(v)
	switch key {
	case "serial", "model", "vendor":
		return strings.ToLower(strings.Join(strings.Fields(v), " "))
	case "wwn":
		// Every 0x goes, not only the first: what is left after one may start with
		// another ("0x0x5"), and a hint's canonical form must read back as itself.
		v = strings.ToLower(v)
		for strings.HasPrefix(v, "0x") {
			v = strings.TrimSpace(v[2:])
		}
		return v
	case "name":
		if v != "" && !strings.HasPrefix(v, "/") {
			return "/dev/" + v
		}
	case "by_path":
		if v != "" && !strings.HasPrefix(v, "/") {
			return "/dev/disk/by-path/" + v
		}
	}
	return v
}

var units = []struct {
	name  string
	bytes int64
}{
	{"B", 1}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}, {"P", 1 << 50},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"PB", 1e15},
}

// ParseSize reads a size as a size hint takes it ("64G", "1.5T", "960GB"; a bare
// number is GiB) and returns bytes.
func ParseSize(v string) (int64, error) {
	n, unit, err := parseSize(strings.TrimSpace(v))
	if err != nil {
		return 0, err
	}
	return int64(n * float64(unit)), nil
}

// parseSize reads "400", "400G", "1.5TiB", "960GB".
func parseSize(v string) (float64, int64, error) {
	end := strings.IndexFunc(v, func(r rune) bool { return !(r >= '0' && r <= '9' || r == '.') })
	num, suffix := v, ""
	if end >= 0 {
		num, suffix = v[:end], strings.TrimSpace(v[end:])
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n < 0 || math.IsInf(n, 0) || math.IsNaN(n) {
		return 0, 0, fmt.Errorf("%w: size %q: want a number and an optional unit (400G, 1.5T, 960GB)", ErrSyntax, v)
	}
	suffix = strings.ToUpper(strings.TrimSuffix(strings.TrimSuffix(suffix, "iB"), "IB"))
	if suffix == "" {
		suffix = "G" // Ironic's size hint is in GiB
	}
	for _, u := range units {
		if u.name == suffix {
			if n*float64(u.bytes) > 1<<62 {
				return 0, 0, fmt.Errorf("%w: size %q is too large", ErrSyntax, v)
			}
			return n, u.bytes, nil
		}
	}
	return 0, 0, fmt.Errorf("%w: size %q: unknown unit (B, K, M, G, T, P, KB, MB, GB, TB, PB)", ErrSyntax, v)
}

func unitName(b int64) string {
	for _, u := range units {
		if u.bytes == b {
			return u.name
		}
	}
	return ""
}

// sort puts the terms in key order (stable: a size range keeps its order), so equal
// hints print the same.
func (h *Hints) sort() {
	slices.SortStableFunc(h.terms, func(a, b term) int { return strings.Compare(a.key, b.key) })
}

// String is the canonical text form, which Parse reads back to equal hints.
func (h Hints) String() string {
	parts := make([]string, len(h.terms))
	for i, t := range h.terms {
		switch t.op {
		case opIn, opAny:
			v := t.value
			if t.op == opIn {
				v = string(opIn) + " " + v
			}
			parts[i] = t.key + "=" + v
		default:
			parts[i] = t.key + string(t.op) + t.value
		}
	}
	return strings.Join(parts, ",")
}

// MarshalText stores hints in their text form.
func (h Hints) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText parses the text form.
func (h *Hints) UnmarshalText(b []byte) error {
	p, err := Parse(string(b))
	if err != nil {
		return err
	}
	*h = p
	return nil
}

// UnmarshalJSON takes the text form as a JSON string, or Ironic's own object form:
// {"size": ">= 400", "serial": "s== S123", "rotational": false}.
func (h *Hints) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		return h.UnmarshalText([]byte(s))
	}
	if string(b) == "null" {
		*h = Hints{}
		return nil
	}
	var obj map[string]any
	if err := json.Unmarshal(b, &obj); err != nil {
		return fmt.Errorf("%w: want a string or an object of hints: %v", ErrSyntax, err)
	}
	if len(obj) > maxTerms {
		return fmt.Errorf("%w: %d hints, at most %d", ErrSyntax, len(obj), maxTerms)
	}
	var out Hints
	for key, raw := range obj {
		var value string
		switch v := raw.(type) {
		case string:
			value = v
		case bool:
			value = strconv.FormatBool(v)
		case float64:
			value = strconv.FormatFloat(v, 'f', -1, 64)
		default:
			return fmt.Errorf("%w: %s: want a string, number or boolean", ErrSyntax, key)
		}
		o, rest := ironicOp(strings.TrimSpace(value))
		t, err := newTerm(strings.ToLower(key), o, rest)
		if err != nil {
			return err
		}
		out.terms = append(out.terms, t)
	}
	out.sort()
	*h = out
	return nil
}

// ironicOp splits Ironic's operator prefix off a value: "s== x", ">= 400", "<in> x".
func ironicOp(v string) (op, string) {
	for _, p := range []struct {
		text string
		op   op
	}{
		{"s==", opEq}, {"s!=", opNe}, {"<in>", opIn}, {"==", opEq}, {"!=", opNe},
		{">=", opGe}, {"<=", opLe}, {"<or>", opAny}, {">", opGt}, {"<", opLt},
	} {
		if strings.HasPrefix(v, p.text) {
			if p.op == opAny {
				return opAny, v // newTerm splits the <or> list itself
			}
			return p.op, strings.TrimSpace(v[len(p.text):])
		}
	}
	return opEq, v
}

// MarshalJSON writes the text form as a JSON string.
func (h Hints) MarshalJSON() ([]byte, error) { return json.Marshal(h.String()) }
