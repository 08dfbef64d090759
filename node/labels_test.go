package node_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/bootyard/bootyard/node"
)

func TestValidateName_AcceptsOnlyRFC1123Labels(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"simple", "gpu-01", true},
		{"digits only", "42", true},
		{"single letter", "a", true},
		{"63 characters", strings.Repeat("a", 63), true},
		{"empty", "", false},
		{"64 characters", strings.Repeat("a", 64), false},
		{"upper case", "GPU-01", false},
		{"leading dash", "-gpu", false},
		{"trailing dash", "gpu-", false},
		{"dot (a subdomain, not a label)", "gpu.lab", false},
		{"underscore", "gpu_01", false},
		{"space", "gpu 01", false},
		{"slash", "gpu/01", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := node.ValidateName(tt.in)
			if tt.ok && err != nil {
				t.Fatalf("ValidateName(%q) = %v, want nil", tt.in, err)
			}
			if !tt.ok && !errors.Is(err, node.ErrInvalid) {
				t.Fatalf("ValidateName(%q) = %v, want ErrInvalid", tt.in, err)
			}
		})
	}
}

func TestDefaultName_IsDerivedFromTheMACAndIsAValidName(t *testing.T) {
	mac, err := node.ParseMAC("52-54-00-AB-CD-EF")
	if err != nil {
		t.Fatal(err)
	}
	name := node.DefaultName(mac)
	if name != "node-525400abcdef" {
		t.Fatalf("DefaultName = %q, want node-525400abcdef", name)
	}
	if err := node.ValidateName(name); err != nil {
		t.Fatalf("the default name does not validate: %v", err)
	}
}

func TestValidateLabels_UsesTheKubernetesRules(t *testing.T) {
	tests := []struct {
		name   string
		labels map[string]string
		ok     bool
	}{
		{"none", nil, true},
		{"plain key and value", map[string]string{"gpu": "a100"}, true},
		{"prefixed key", map[string]string{"node.kubernetes.io/instance-type": "m5.large"}, true},
		{"empty value", map[string]string{"edge": ""}, true},
		{"value with dot, dash, underscore", map[string]string{"zone": "rack-1.row_2"}, true},
		{"63-character name and value", map[string]string{strings.Repeat("k", 63): strings.Repeat("v", 63)}, true},

		{"empty key", map[string]string{"": "x"}, false},
		{"key with space", map[string]string{"my key": "x"}, false},
		{"key starting with dash", map[string]string{"-gpu": "x"}, false},
		{"key name of 64 characters", map[string]string{strings.Repeat("k", 64): "x"}, false},
		{"key with two slashes", map[string]string{"a/b/c": "x"}, false},
		{"key with empty prefix", map[string]string{"/gpu": "x"}, false},
		{"key with upper-case prefix", map[string]string{"Example.COM/gpu": "x"}, false},
		{"value of 64 characters", map[string]string{"gpu": strings.Repeat("v", 64)}, false},
		{"value with space", map[string]string{"gpu": "a 100"}, false},
		{"value ending in dash", map[string]string{"gpu": "a100-"}, false},
		{"value with slash", map[string]string{"gpu": "a/100"}, false},
		{"one bad among good", map[string]string{"a": "1", "b": "2", "c": "bad value"}, false},

		// The kubelet's own rules for --node-labels.
		{"kubelet may set its hostname", map[string]string{"kubernetes.io/hostname": "gpu-1"}, true},
		{"kubelet may set the zone", map[string]string{"topology.kubernetes.io/zone": "rack-1"}, true},
		{"kubelet namespace", map[string]string{"kubelet.kubernetes.io/custom": "x"}, true},
		{"node namespace subdomain", map[string]string{"example.node.kubernetes.io/gpu": "x"}, true},
		{"not a Kubernetes namespace", map[string]string{"kubernetes.io.example.com/x": "y"}, true},
		{"node role", map[string]string{"node-role.kubernetes.io/worker": "true"}, false},
		{"kubernetes.io/foo", map[string]string{"kubernetes.io/foo": "bar"}, false},
		{"k8s.io namespace", map[string]string{"k8s.io/foo": "bar"}, false},
		{"k8s.io subdomain", map[string]string{"sub.k8s.io/foo": "bar"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := node.ValidateLabels(tt.labels)
			if tt.ok && err != nil {
				t.Fatalf("ValidateLabels(%v) = %v, want nil", tt.labels, err)
			}
			if !tt.ok && !errors.Is(err, node.ErrInvalid) {
				t.Fatalf("ValidateLabels(%v) = %v, want ErrInvalid", tt.labels, err)
			}
		})
	}
}

func TestParseLabel_SplitsKeyAndValueAndValidatesThem(t *testing.T) {
	tests := []struct {
		in        string
		key, val  string
		wantError bool
	}{
		{in: "gpu=a100", key: "gpu", val: "a100"},
		{in: "example.com/edge=", key: "example.com/edge", val: ""},
		{in: "gpu", wantError: true},       // no "="
		{in: "=a100", wantError: true},     // empty key
		{in: "gpu=a=100", wantError: true}, // "=" is not allowed in a value
		{in: "g pu=a100", wantError: true}, // space in key
		{in: "gpu=a 100", wantError: true}, // space in value
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			k, v, err := node.ParseLabel(tt.in)
			if tt.wantError {
				if !errors.Is(err, node.ErrInvalid) {
					t.Fatalf("ParseLabel(%q) = %q, %q, %v; want ErrInvalid", tt.in, k, v, err)
				}
				return
			}
			if err != nil || k != tt.key || v != tt.val {
				t.Fatalf("ParseLabel(%q) = %q, %q, %v; want %q, %q", tt.in, k, v, err, tt.key, tt.val)
			}
		})
	}
}

func TestLabelList_IsSortedKeyEqualsValue(t *testing.T) {
	got := node.LabelList(map[string]string{"zone": "b", "gpu": "a100", "edge": ""})
	want := []string{"edge=", "gpu=a100", "zone=b"}
	if !slices.Equal(got, want) {
		t.Fatalf("LabelList = %q, want %q", got, want)
	}
}

func TestValidateLabels_AKubeletRefusalSaysWhy(t *testing.T) {
	err := node.ValidateLabels(map[string]string{"node-role.kubernetes.io/worker": "true"})
	if !errors.Is(err, node.ErrInvalid) {
		t.Fatalf("ValidateLabels = %v, want ErrInvalid", err)
	}
	for _, want := range []string{"node-role.kubernetes.io/worker", "kubelet refuses", "node.kubernetes.io"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
