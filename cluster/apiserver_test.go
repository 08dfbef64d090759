package cluster

// A real kube-apiserver (v1.34.4) and etcd (v3.6.5) on loopback, for the integration
// tests, from internal/kubetest; cluster/testdata/kube/build.sh builds both for make.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/bootyard/bootyard/internal/kubetest"
)

// kubeAPI is a running API server with an admin client and a kubeconfig for Bootyard.
type kubeAPI struct {
	admin              kubernetes.Interface
	bootyardKubeconfig string
}

// startKubeAPI starts a real API server (internal/kubetest) and applies what a real
// cluster has before Bootyard's manifests, then deploy/rbac.yaml and deploy/deployment.yaml.
func startKubeAPI(t *testing.T) *kubeAPI {
	t.Helper()
	k := kubetest.Start(t)
	api := &kubeAPI{admin: k.Admin, bootyardKubeconfig: k.BootyardKubeconfig}
	api.setUp(t)
	return api
}

// setUp creates what a real cluster has before Bootyard's manifests are applied, then
// applies deploy/rbac.yaml and deploy/deployment.yaml as they are.
func (api *kubeAPI) setUp(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	create := func(obj runtime.Object) {
		t.Helper()
		if err := createObject(ctx, api.admin, obj); err != nil {
			t.Fatalf("create %T: %v", obj, err)
		}
	}
	// LLMOS creates llmos-system; Bootyard's token Role lives in it.
	create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: TokenNamespace}})
	for _, file := range []string{"rbac.yaml", "deployment.yaml"} {
		for _, obj := range decodeManifests(t, filepath.Join("..", "deploy", file)) {
			create(obj)
		}
	}
	// kube-controller-manager does not run here: stand in for its service account
	// controller, without which the ServiceAccount admission plugin refuses every pod.
	for _, ns := range []string{"default", DefaultHelperNamespace} {
		create(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "default"}})
	}
}

func decodeManifests(t *testing.T, path string) []runtime.Object {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []runtime.Object
	for _, doc := range bytes.Split(b, []byte("\n---")) {
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, obj)
	}
	return out
}

func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for _, l := range bytes.Split(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(l), []byte("#")) {
			b.Write(l)
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// createObject creates one of the kinds the manifests hold.
func createObject(ctx context.Context, cs kubernetes.Interface, obj runtime.Object) error {
	var err error
	opts := metav1.CreateOptions{}
	switch o := obj.(type) {
	case *corev1.Namespace:
		_, err = cs.CoreV1().Namespaces().Create(ctx, o, opts)
	case *corev1.ServiceAccount:
		_, err = cs.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, opts)
	case *corev1.Secret:
		_, err = cs.CoreV1().Secrets(o.Namespace).Create(ctx, o, opts)
	case *rbacv1.ClusterRole:
		_, err = cs.RbacV1().ClusterRoles().Create(ctx, o, opts)
	case *rbacv1.ClusterRoleBinding:
		_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, o, opts)
	case *rbacv1.Role:
		_, err = cs.RbacV1().Roles(o.Namespace).Create(ctx, o, opts)
	case *rbacv1.RoleBinding:
		_, err = cs.RbacV1().RoleBindings(o.Namespace).Create(ctx, o, opts)
	case *appsv1.Deployment:
		_, err = cs.AppsV1().Deployments(o.Namespace).Create(ctx, o, opts)
	default:
		err = fmt.Errorf("%T: %w", obj, errUnknownKind)
	}
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

var errUnknownKind = errors.New("no create for this kind")
