package kubestore_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bootyard/bootyard/internal/kubetest"
	"github.com/bootyard/bootyard/kubestore"
	"github.com/bootyard/bootyard/store"
	"github.com/bootyard/bootyard/store/storetest"
)

// startAPI starts a real kube-apiserver and etcd with the CRDs of deploy/crds installed.
func startAPI(t testing.TB) *kubetest.API {
	t.Helper()
	api := kubetest.Start(t)
	api.InstallCRDs(t, filepath.Join(kubetest.Root(t), "deploy", "crds"))
	return api
}

// opener opens each backend in a namespace of its own on api: a fresh inventory per test
// without a fresh API server.
func opener(api *kubetest.API) storetest.Opener {
	var seq atomic.Int64
	return func(t *testing.T, limits store.Limits) store.Backend {
		t.Helper()
		ns := fmt.Sprintf("suite-%d", seq.Add(1))
		return openIn(t, api, ns, limits)
	}
}

func openIn(t testing.TB, api *kubetest.API, ns string, limits store.Limits) *kubestore.Store {
	t.Helper()
	ctx := context.Background()
	_, err := api.Admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !isAlreadyExists(err) {
		t.Fatal(err)
	}
	s, err := kubestore.New(ctx, api.AdminConfig, kubestore.Options{Namespace: ns, Limits: limits, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestSuite runs the store suite the bbolt store passes against the Kubernetes backend.
func TestSuite(t *testing.T) {
	api := startAPI(t)
	storetest.Run(t, opener(api))
}
