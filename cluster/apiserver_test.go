package cluster

// A real kube-apiserver (v1.34.4) and etcd (v3.6.5) on loopback, for the integration
// tests. Both are built from Go modules (testdata/kube) into .cache/kube at the
// repository root, once; cluster/testdata/kube/build.sh does the same for make.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// The identity deploy/rbac.yaml binds: the bootyard service account. The static token
// file gives the test's token that user name and groups, as a projected token would.
const (
	bootyardUser   = "system:serviceaccount:bootyard-system:bootyard"
	bootyardGroups = "system:serviceaccounts,system:serviceaccounts:bootyard-system,system:authenticated"
)

// kubeAPI is a running API server with an admin client and a kubeconfig for Bootyard.
type kubeAPI struct {
	admin              kubernetes.Interface
	bootyardKubeconfig string
}

// kubeBinaries returns the cached binaries, building them when missing (minutes, once).
func kubeBinaries(t *testing.T) (etcd, apiserver string) {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, ".cache", "kube")
	etcd, apiserver = filepath.Join(dir, "etcd"), filepath.Join(dir, "kube-apiserver")
	if fileExists(etcd) && fileExists(apiserver) {
		return etcd, apiserver
	}
	t.Logf("building etcd and kube-apiserver into %s (first run only; minutes)", dir)
	out, err := exec.Command("sh", filepath.Join("testdata", "kube", "build.sh"), dir).CombinedOutput()
	if err != nil {
		t.Skipf("cannot build kube-apiserver and etcd from their Go modules (%v); the integration tests need them:\n%s", err, tail(out, 40))
	}
	return etcd, apiserver
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func tail(b []byte, lines int) string {
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

// startKubeAPI starts etcd and kube-apiserver with a static token file, RBAC and a
// self-signed serving certificate, applies deploy/rbac.yaml and returns once /readyz
// answers. Both processes are stopped, by the PIDs started here, when t ends.
func startKubeAPI(t *testing.T) *kubeAPI {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: no real API server")
	}
	etcdBin, apiBin := kubeBinaries(t)
	dir := t.TempDir()

	etcdClient, etcdPeer, apiPort := freePort(t), freePort(t), freePort(t)
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdClient)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(etcdPeer)
	startProcess(t, "etcd", dir, etcdBin,
		"--name", "test", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "test="+peerURL, "--log-level", "warn",
		// A throwaway store on shared cores: durability buys nothing here.
		"--unsafe-no-fsync")

	certPEM, keyPEM := selfSignedCert(t)
	writeFile(t, filepath.Join(dir, "serving.crt"), certPEM)
	writeFile(t, filepath.Join(dir, "serving.key"), keyPEM)
	writeFile(t, filepath.Join(dir, "sa.key"), rsaKeyPEM(t))
	adminToken, bootyardToken := randomToken(t), randomToken(t)
	writeFile(t, filepath.Join(dir, "tokens.csv"), []byte(fmt.Sprintf(
		"%s,admin,admin,\"system:masters\"\n%s,%s,bootyard-uid,\"%s\"\n", adminToken, bootyardToken, bootyardUser, bootyardGroups)))
	startProcess(t, "kube-apiserver", dir, apiBin,
		"--etcd-servers", etcdURL,
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", strconv.Itoa(apiPort),
		"--tls-cert-file", filepath.Join(dir, "serving.crt"), "--tls-private-key-file", filepath.Join(dir, "serving.key"),
		"--cert-dir", filepath.Join(dir, "certs"),
		"--token-auth-file", filepath.Join(dir, "tokens.csv"),
		"--authorization-mode", "RBAC",
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", filepath.Join(dir, "sa.key"),
		"--service-account-signing-key-file", filepath.Join(dir, "sa.key"),
		"--service-cluster-ip-range", "10.96.0.0/16",
		// Real clusters allow privileged pods; the helper pods are.
		"--allow-privileged",
		"--profiling=false")

	host := "https://127.0.0.1:" + strconv.Itoa(apiPort)
	waitReady(t, host, adminToken, certPEM)

	adminCfg, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig(host, adminToken, certPEM))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := kubernetes.NewForConfig(adminCfg)
	if err != nil {
		t.Fatal(err)
	}
	api := &kubeAPI{admin: admin, bootyardKubeconfig: filepath.Join(dir, "bootyard.kubeconfig")}
	writeFile(t, api.bootyardKubeconfig, kubeconfig(host, bootyardToken, certPEM))
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

// startProcess runs bin with args, its output in dir/name.log, and stops it (SIGTERM,
// then SIGKILL) by its PID when t ends. A process that exits early fails the test with
// the end of its log.
func startProcess(t *testing.T, name, dir, bin string, args ...string) {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logPath)
			t.Errorf("%s exited before the end of the test: %v\n%s", name, err, tail(b, 30))
			return
		default:
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("%s log (end):\n%s", name, tail(b, 30))
		}
	})
}

func waitReady(t *testing.T, host, token string, caPEM []byte) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	// A cold API server on two shared cores takes a while to create its system objects.
	deadline := time.Now().Add(3 * time.Minute)
	var last string
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodGet, host+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("kube-apiserver never became ready: %s", last)
}

func kubeconfig(host, token string, caPEM []byte) []byte {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["test"] = &clientcmdapi.Cluster{Server: host, CertificateAuthorityData: caPEM}
	cfg.AuthInfos["user"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "user"}
	cfg.CurrentContext = "test"
	b, err := clientcmd.Write(*cfg)
	if err != nil {
		panic(err) // only an unserialisable config, which this is not
	}
	return b
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func selfSignedCert(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

func rsaKeyPEM(t *testing.T) []byte {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
}

func randomToken(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", b)
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

var errUnknownKind = errors.New("no create for this kind")
