package rootdisk

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/bootyard/bootyard/agentapi"
)

// ErrNoDisk: the hints match no disk, or no disk fits the image.
var ErrNoDisk = errors.New("no disk matches")

// ErrAmbiguous: the hints match more than one disk.
var ErrAmbiguous = errors.New("more than one disk matches")

// Match says whether every hint holds for d.
func (h Hints) Match(d agentapi.Disk) bool {
	for _, t := range h.terms {
		if !t.match(d) {
			return false
		}
	}
	return true
}

func (t term) match(d agentapi.Disk) bool {
	switch t.key {
	case "size":
		return t.matchSize(d.Size)
	case "rotational":
		return (d.Rotational == t.rot) == (t.op == opEq)
	case "by_path":
		return t.matchString(normalise(t.key, d.ByPath))
	case "name":
		return t.matchString(normalise(t.key, d.Path)) || t.matchString(normalise(t.key, d.Name))
	case "serial":
		return t.matchString(normalise(t.key, d.Serial))
	case "model":
		return t.matchString(normalise(t.key, d.Model))
	case "vendor":
		return t.matchString(normalise(t.key, d.Vendor))
	case "wwn":
		return t.matchString(normalise(t.key, d.WWN))
	}
	return false
}

// matchString compares a disk's normalised property; a disk that does not report the
// property (no serial) matches no positive hint on it.
func (t term) matchString(v string) bool {
	switch t.op {
	case opEq:
		return v != "" && v == t.value
	case opNe:
		return v != t.value
	case opIn:
		return v != "" && strings.Contains(v, t.value)
	case opAny:
		return v != "" && slices.Contains(t.any, v)
	}
	return false
}

// matchSize compares in bytes, except == and !=, which compare the disk's size in the
// hint's unit, rounded down, as Ironic does with GiB: no disk is exactly 400 GiB.
func (t term) matchSize(size int64) bool {
	want := t.size * float64(t.unit)
	got := float64(size)
	switch t.op {
	case opEq, opNe:
		eq := float64(size/t.unit) == t.size
		return eq == (t.op == opEq)
	case opGe:
		return got >= want
	case opLe:
		return got <= want
	case opGt:
		return got > want
	case opLt:
		return got < want
	}
	return false
}

// Choice is the selected disk and, for the install's log and events, why.
type Choice struct {
	Disk   agentapi.Disk
	Reason string
}

// Select picks the install disk among disks (removable ones are never candidates):
// with hints, the one disk they match, which must hold need bytes; with none, the
// smallest disk that holds need bytes (kernel name order among equals). No match, more
// than one, or nothing big enough is an error that lists the candidates.
func Select(h Hints, disks []agentapi.Disk, need int64) (Choice, error) {
	var fixed []agentapi.Disk
	for _, d := range disks {
		if !d.Removable && d.Size > 0 {
			fixed = append(fixed, d)
		}
	}
	if len(fixed) == 0 {
		return Choice{}, fmt.Errorf("%w: the machine has no non-removable disk", ErrNoDisk)
	}
	if h.IsZero() {
		var best *agentapi.Disk
		for i, d := range fixed {
			if d.Size >= need && (best == nil || d.Size < best.Size) {
				best = &fixed[i]
			}
		}
		if best == nil {
			return Choice{}, fmt.Errorf("%w: no disk holds the image's %d bytes; candidates: %s", ErrNoDisk, need, Describe(fixed))
		}
		return Choice{Disk: *best, Reason: fmt.Sprintf("no root-disk hints: %s is the smallest non-removable disk that fits the image", best.Path)}, nil
	}
	var matched []agentapi.Disk
	for _, d := range fixed {
		if h.Match(d) {
			matched = append(matched, d)
		}
	}
	switch {
	case len(matched) == 0:
		return Choice{}, fmt.Errorf("root-disk hints %q: %w; candidates: %s", h, ErrNoDisk, Describe(fixed))
	case len(matched) > 1:
		return Choice{}, fmt.Errorf("root-disk hints %q: %w: %s", h, ErrAmbiguous, Describe(matched))
	}
	d := matched[0]
	if d.Size < need {
		return Choice{}, fmt.Errorf("root-disk hints %q select %s: %w: it has %d bytes, the image needs %d", h, d.Path, ErrNoDisk, d.Size, need)
	}
	return Choice{Disk: d, Reason: fmt.Sprintf("root-disk hints %q select %s", h, d.Path)}, nil
}

// Describe lists disks the way an operator picks one out: name, size, bus, model,
// serial, WWN.
func Describe(disks []agentapi.Disk) string {
	parts := make([]string, len(disks))
	for i, d := range disks {
		f := []string{d.Path, formatSize(d.Size)}
		if d.Transport != "" {
			f = append(f, d.Transport)
		}
		if d.Rotational {
			f = append(f, "rotational")
		}
		for _, kv := range [][2]string{{"model", d.Model}, {"serial", d.Serial}, {"wwn", d.WWN}, {"by_path", d.ByPath}} {
			if kv[1] != "" {
				f = append(f, kv[0]+"="+kv[1])
			}
		}
		parts[i] = "(" + strings.Join(f, " ") + ")"
	}
	return strings.Join(parts, " ")
}

func formatSize(b int64) string {
	switch {
	case b >= 1<<40:
		return fmt.Sprintf("%.1fT", float64(b)/(1<<40))
	case b >= 1<<30:
		return fmt.Sprintf("%.1fG", float64(b)/(1<<30))
	default:
		return fmt.Sprintf("%dM", b>>20)
	}
}
