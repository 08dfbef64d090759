// Package kubetest starts a real kube-apiserver and etcd on loopback for tests: the
// cluster integration tests and the Kubernetes store backend's suite share it.
//
// Both binaries (kube-apiserver v1.34.4, etcd v3.6.5) are built from Go modules
// (cluster/testdata/kube) into .cache/kube at the repository root, once.
package kubetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
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

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// The identity deploy/rbac.yaml binds: the bootyard service account. The static token
// file gives BootyardKubeconfig's token that user name and groups, as a projected token would.
const (
	BootyardUser   = "system:serviceaccount:bootyard-system:bootyard"
	bootyardGroups = "system:serviceaccounts,system:serviceaccounts:bootyard-system,system:authenticated"
)

// API is a running API server with an admin client and a kubeconfig for Bootyard.
type API struct {
	Host        string
	Admin       kubernetes.Interface
	AdminConfig *rest.Config
	// BootyardKubeconfig authenticates as BootyardUser, with only what RBAC grants it.
	BootyardKubeconfig string
	// AdminKubeconfig authenticates as a cluster administrator (system:masters).
	AdminKubeconfig string
	// Dir holds the processes' logs and data.
	Dir string
}

// Root is the repository root: the nearest directory above the working directory (a
// package's, under go test) that holds go.mod.
func Root(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if fileExists(filepath.Join(dir, "go.mod")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

// kubeBinaries returns the cached binaries, building them when missing (minutes, once).
func kubeBinaries(t testing.TB) (etcd, apiserver string) {
	t.Helper()
	root := Root(t)
	dir := filepath.Join(root, ".cache", "kube")
	etcd, apiserver = filepath.Join(dir, "etcd"), filepath.Join(dir, "kube-apiserver")
	if fileExists(etcd) && fileExists(apiserver) {
		return etcd, apiserver
	}
	t.Logf("building etcd and kube-apiserver into %s (first run only; minutes)", dir)
	out, err := exec.Command("sh", filepath.Join(root, "cluster", "testdata", "kube", "build.sh"), dir).CombinedOutput()
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

// Start starts etcd and kube-apiserver with a static token file, RBAC and a self-signed
// serving certificate and returns once /readyz answers. Both processes are stopped, by
// the PIDs started here, when t ends. Under -short it skips t.
func Start(t testing.TB) *API {
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
		"%s,admin,admin,\"system:masters\"\n%s,%s,bootyard-uid,\"%s\"\n", adminToken, bootyardToken, BootyardUser, bootyardGroups)))
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
		// BOOTYARD_KUBE_PROFILING=1 serves /debug/pprof (to the admin token), to see
		// where the API server's CPU goes under a test's load; off, it costs nothing.
		"--profiling="+strconv.FormatBool(os.Getenv("BOOTYARD_KUBE_PROFILING") != ""))

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
	api := &API{Host: host, Admin: admin, AdminConfig: adminCfg, BootyardKubeconfig: filepath.Join(dir, "bootyard.kubeconfig"),
		AdminKubeconfig: filepath.Join(dir, "admin.kubeconfig"), Dir: dir}
	writeFile(t, api.BootyardKubeconfig, kubeconfig(host, bootyardToken, certPEM))
	writeFile(t, api.AdminKubeconfig, kubeconfig(host, adminToken, certPEM))
	return api
}

// startProcess runs bin with args, its output in dir/name.log, and stops it (SIGTERM,
// then SIGKILL) by its PID when t ends. A process that exits early fails the test with
// the end of its log.
func startProcess(t testing.TB, name, dir, bin string, args ...string) {
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

func waitReady(t testing.TB, host, token string, caPEM []byte) {
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

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func selfSignedCert(t testing.TB) (certPEM, keyPEM []byte) {
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

func rsaKeyPEM(t testing.TB) []byte {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
}

func randomToken(t testing.TB) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", b)
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
