package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/bootyard/bootyard/store"
	"github.com/bootyard/bootyard/web"
)

func TestClusterWiring_ConnectsOnlyWhenAKubeconfigOrAPodSaysSo(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "kubeconfig")
	// Nothing listens on port 1: the controller starts and waits for its first sync.
	if err := os.WriteFile(good, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name          string
		kubeconfig    string
		inPod         bool
		wantConnected bool
		wantErr       string
		leader        leaderOptions
	}{
		{name: "no kubeconfig outside a pod: off", kubeconfig: ""},
		{name: "none: off even in a pod", kubeconfig: kubeconfigOff, inPod: true},
		{name: "a kubeconfig: on", kubeconfig: good, wantConnected: true},
		{name: "a missing kubeconfig: refuse to start", kubeconfig: filepath.Join(dir, "missing"), wantErr: "kubeconfig"},
		{name: "in a pod without a service account: refuse to start", kubeconfig: "", inPod: true, wantErr: "in-cluster config"},
		{name: "--leader-elect with a kubeconfig: on", kubeconfig: good, wantConnected: true, leader: leaderOptions{enabled: true}},
		{name: "--leader-elect without the integration: refuse to start", kubeconfig: "", leader: leaderOptions{enabled: true}, wantErr: "--leader-elect needs the cluster integration"},
		{name: "--leader-elect with none: refuse to start", kubeconfig: kubeconfigOff, leader: leaderOptions{enabled: true}, wantErr: "--leader-elect needs the cluster integration"},
		{name: "--leader-elect renewing past the lease: refuse to start", kubeconfig: good, wantErr: "renew deadline",
			leader: leaderOptions{enabled: true, leaseDuration: 10 * time.Second, renewDeadline: 15 * time.Second, retryPeriod: 2 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.wantErr == "in-cluster config" && fileExists("/var/run/secrets/kubernetes.io/serviceaccount/token") {
				t.Skip("this test runs in a pod with a service account: the in-cluster config would load")
			}
			host := ""
			if tt.inPod {
				host = "10.96.0.1"
			}
			t.Setenv("KUBERNETES_SERVICE_HOST", host)
			t.Setenv("KUBERNETES_SERVICE_PORT", "443")
			st, err := store.Open(filepath.Join(t.TempDir(), "bootyard.db"), store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			o := clusterOptions{kubeconfig: tt.kubeconfig, drainTimeout: 1, rebootTimeout: 1, leader: tt.leader}
			ctx, cancel := context.WithCancel(context.Background())
			g, gctx := errgroup.WithContext(ctx)
			var deps web.Deps
			connected, err := o.start(gctx, g, st, &deps, slog.New(slog.NewTextHandler(io.Discard, nil)))
			cancel()
			if werr := g.Wait(); werr != nil {
				t.Errorf("controller: %v", werr)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("start: %v, want an error about %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := connected != nil && connected(); got != tt.wantConnected || (deps.Cluster != nil) != tt.wantConnected {
				t.Errorf("connected %v, deps.Cluster set %v; want %v", got, deps.Cluster != nil, tt.wantConnected)
			}
		})
	}
}
