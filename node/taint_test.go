package node_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/bootyard/bootyard/node"
)

func TestParseTaint_AcceptsTheThreeKubernetesEffects(t *testing.T) {
	tests := []struct {
		in   string
		want node.Taint
	}{
		{"dedicated=gpu:NoSchedule", node.Taint{Key: "dedicated", Value: "gpu", Effect: node.EffectNoSchedule}},
		{"dedicated=gpu:PreferNoSchedule", node.Taint{Key: "dedicated", Value: "gpu", Effect: node.EffectPreferNoSchedule}},
		{"dedicated=gpu:NoExecute", node.Taint{Key: "dedicated", Value: "gpu", Effect: node.EffectNoExecute}},
		{"node-role.kubernetes.io/control-plane:NoSchedule",
			node.Taint{Key: "node-role.kubernetes.io/control-plane", Effect: node.EffectNoSchedule}},
		{"maintenance=:NoExecute", node.Taint{Key: "maintenance", Effect: node.EffectNoExecute}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := node.ParseTaint(tt.in)
			if err != nil {
				t.Fatalf("ParseTaint(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseTaint(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			again, err := node.ParseTaint(got.String())
			if err != nil || again != got {
				t.Fatalf("String() %q does not parse back: %+v, %v", got.String(), again, err)
			}
		})
	}
}

func TestParseTaint_RefusesBadKeysValuesAndEffects(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"missing effect", "dedicated=gpu"},
		{"empty effect", "dedicated=gpu:"},
		{"unknown effect", "dedicated=gpu:NoScheduleEver"},
		{"effect in lower case", "dedicated=gpu:noschedule"},
		{"effect only", ":NoSchedule"},
		{"empty key", "=gpu:NoSchedule"},
		{"key with space", "dedi cated=gpu:NoSchedule"},
		{"key with two slashes", "a/b/c=gpu:NoSchedule"},
		{"key name of 64 characters", strings.Repeat("k", 64) + "=gpu:NoSchedule"},
		{"value with space", "dedicated=g pu:NoSchedule"},
		{"value of 64 characters", "dedicated=" + strings.Repeat("v", 64) + ":NoSchedule"},
		{"value with colon", "dedicated=a:b:NoSchedule"},
		{"empty", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := node.ParseTaint(tt.in)
			if !errors.Is(err, node.ErrInvalid) {
				t.Fatalf("ParseTaint(%q) = %+v, %v; want ErrInvalid", tt.in, got, err)
			}
		})
	}
}

func TestTaint_ValidateRefusesAStructWithoutEffect(t *testing.T) {
	err := node.Taint{Key: "dedicated", Value: "gpu"}.Validate()
	if !errors.Is(err, node.ErrInvalid) {
		t.Fatalf("Validate() of a taint without effect = %v, want ErrInvalid", err)
	}
}

func TestTaint_JSONIsTheStringFormAndIsValidatedOnDecode(t *testing.T) {
	b, err := json.Marshal([]node.Taint{{Key: "gpu", Value: "a100", Effect: node.EffectNoSchedule}, {Key: "edge", Effect: node.EffectNoExecute}})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `["gpu=a100:NoSchedule","edge:NoExecute"]` {
		t.Fatalf("json.Marshal = %s", b)
	}
	var back []node.Taint
	if err := json.Unmarshal([]byte(`["gpu=a100:Sometimes"]`), &back); !errors.Is(err, node.ErrInvalid) {
		t.Fatalf("decoding a bad effect = %v, want ErrInvalid", err)
	}
}
