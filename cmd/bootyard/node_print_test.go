package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/node"
)

func TestPrintNode_ShowsWhatTheClusterSays(t *testing.T) {
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		cluster *node.ClusterStatus
		want    []string
		notWant []string
	}{
		{"not connected", nil, []string{"Name:", "cp-1"}, []string{"Kubernetes:"}},
		{"ready", &node.ClusterStatus{Ready: true, Roles: []string{"control-plane", "etcd"}, KubeletVersion: "v1.31.4+k3s1", ObservedAt: at},
			[]string{"Kubernetes:", "Ready, roles control-plane,etcd, kubelet v1.31.4+k3s1"}, []string{"NotReady"}},
		{"not ready", &node.ClusterStatus{Ready: false, KubeletVersion: "v1.31.4+k3s1", ObservedAt: at},
			[]string{"NotReady, roles -"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			n := node.Node{Name: "cp-1", Role: node.RoleServer, State: node.StateActive, Cluster: tc.cluster, StateSince: at, CreatedAt: at}
			printNode(&buf, n, nil)
			for _, w := range tc.want {
				if !strings.Contains(buf.String(), w) {
					t.Errorf("lacks %q:\n%s", w, buf.String())
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(buf.String(), w) {
					t.Errorf("has %q:\n%s", w, buf.String())
				}
			}
		})
	}
}
