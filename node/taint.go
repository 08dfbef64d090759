package node

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// TaintEffect is one of the three effects Kubernetes knows.
type TaintEffect string

const (
	EffectNoSchedule       TaintEffect = "NoSchedule"
	EffectPreferNoSchedule TaintEffect = "PreferNoSchedule"
	EffectNoExecute        TaintEffect = "NoExecute"
)

// Taint is a Kubernetes node taint, written key=value:Effect or key:Effect.
type Taint struct {
	Key    string
	Value  string
	Effect TaintEffect
}

// ParseTaint parses "key=value:Effect" or "key:Effect" and validates it with the
// Kubernetes rules (qualified-name key, label-value value, known effect).
func ParseTaint(s string) (Taint, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return Taint{}, fmt.Errorf("taint %q: %w: want key=value:Effect", s, ErrInvalid)
	}
	kv, effect := s[:i], TaintEffect(s[i+1:])
	key, value, _ := strings.Cut(kv, "=")
	t := Taint{Key: key, Value: value, Effect: effect}
	if err := t.Validate(); err != nil {
		return Taint{}, fmt.Errorf("taint %q: %w", s, err)
	}
	return t, nil
}

// Validate checks the key, value and effect.
func (t Taint) Validate() error {
	if errs := validation.IsQualifiedName(t.Key); len(errs) > 0 {
		return fmt.Errorf("key %q: %w: %s", t.Key, ErrInvalid, strings.Join(errs, "; "))
	}
	if t.Value != "" {
		if errs := validation.IsValidLabelValue(t.Value); len(errs) > 0 {
			return fmt.Errorf("value %q: %w: %s", t.Value, ErrInvalid, strings.Join(errs, "; "))
		}
	}
	switch t.Effect {
	case EffectNoSchedule, EffectPreferNoSchedule, EffectNoExecute:
		return nil
	}
	return fmt.Errorf("effect %q: %w: must be NoSchedule, PreferNoSchedule or NoExecute", t.Effect, ErrInvalid)
}

// String is the key=value:Effect form LLMOS's config takes.
func (t Taint) String() string {
	if t.Value == "" {
		return t.Key + ":" + string(t.Effect)
	}
	return t.Key + "=" + t.Value + ":" + string(t.Effect)
}

// MarshalText encodes a taint as its string form in JSON.
func (t Taint) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText parses and validates.
func (t *Taint) UnmarshalText(b []byte) error {
	v, err := ParseTaint(string(b))
	if err != nil {
		return err
	}
	*t = v
	return nil
}
