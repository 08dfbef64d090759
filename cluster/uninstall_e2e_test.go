package cluster

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bootyard/bootyard/cloudinit"
	"github.com/bootyard/bootyard/machine"
	"github.com/bootyard/bootyard/node"
)

// The whole report channel at once: the host script as the helper pod hands it over,
// with the real curl, against Bootyard's real machine endpoints (callback key, identity
// check from the node's own address) and the real store, while the deletion's uninstall
// step waits on a pod that stays Running, as it does on a k3s node whose kubelet the
// uninstall stopped. This test imports machine only to check the contract between the
// two ends; the packages themselves share nothing but the node's record.
func TestUninstallReport_FromTheHostScriptThroughTheMachineEndpointToTheStep(t *testing.T) {
	tests := []struct {
		name      string
		exit      int // what LLMOS's uninstall script exits with
		wantState node.State
		wantWhy   string
	}{
		{"success deletes the Node", 0, node.StateDeleted, "LLMOS uninstalled"},
		{"failure fails the step with the status and the log tail", 5, node.StateFailed,
			"stopped at uninstall: the host reported exit status 5: bootyard: running "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			st := openStore(t)
			const mac = "52:54:00:00:00:18"
			importNode(t, st, "gpu-8", node.RoleWorker, mac, node.StateActive)
			// The node's static address is the test's own: the identity check verifies it.
			if _, err := st.UpdateNode(ctx, "gpu-8", func(n *node.Node) ([]node.Event, error) {
				n.IP = netip.MustParsePrefix("127.0.0.1/8")
				return nil, nil
			}); err != nil {
				t.Fatal(err)
			}
			settings, err := st.UpdateClusterSettings(ctx, func(s *node.ClusterSettings) error {
				s.ServerURL, s.Token, s.InstallURL = "https://10.20.0.11:6443", node.Secret(uninstallToken), "http://127.0.0.1:1/install.sh"
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}

			// Bootyard's machine endpoints.
			// The server starts first: the renderer needs its URL.
			var handler http.Handler
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
			t.Cleanup(srv.Close)
			r, err := cloudinit.NewRenderer(cloudinit.Config{AdvertiseURL: srv.URL, CallbackSecret: []byte("e2e")})
			if err != nil {
				t.Fatal(err)
			}
			id, err := machine.NewIdentity(machine.IdentityConfig{Leases: st})
			if err != nil {
				t.Fatal(err)
			}
			nc, err := machine.NewNoCloudHandler(machine.NoCloudConfig{Renderer: r, Inventory: st, Identity: id, Logger: testLogger(t, nil)})
			if err != nil {
				t.Fatal(err)
			}
			handler = machine.New(machine.Config{Logger: testLogger(t, nil)}, machine.Deps{NoCloud: nc}).Handler()

			// The machine, as cloud-init left it with this node's user-data.
			root := t.TempDir()
			n := nodeState(t, st, "gpu-8")
			n.State = node.StateProvisioning // the user-data it was installed with
			ud, err := r.UserData(n, settings, true)
			if err != nil {
				t.Fatal(err)
			}
			fakeMachine(t, root, "/usr/local/bin", ud)

			// The cluster: the pod starts and, as the API server sees it, runs forever.
			cs := fakeCluster(kubeNode("gpu-8", true))
			setHelperStatus(cs, corev1.PodRunning, 0, "")
			cfg := testConfig(nil)
			cfg.UninstallTimeout = 10 * waitTimeout // only the host's report can end the wait
			c := startController(t, cs, st, cfg)
			deleteThroughAPI(t, st, c, "gpu-8", node.DeleteUninstall, false)
			eventually(t, "the uninstall pod is created", func() bool {
				_, err := cs.CoreV1().Pods(cfg.withDefaults().HelperNamespace).Get(ctx, "bootyard-uninstall-gpu-8-g1", metav1.GetOptions{})
				return err == nil
			})

			// What the pod's transient unit runs on the host.
			code, out := runHostScriptToLog(t, root, "FAKE_UNINSTALL_EXIT="+strconv.Itoa(tt.exit))
			if code != tt.exit {
				t.Fatalf("host script exit %d, want %d\n%s", code, tt.exit, out)
			}
			if want := "reported exit status " + strconv.Itoa(tt.exit) + " to Bootyard"; !strings.Contains(out, want) {
				t.Fatalf("host log lacks %q:\n%s", want, out)
			}

			got := deletionEnds(t, st, "gpu-8", tt.wantState)
			if !strings.Contains(got.StateReason, tt.wantWhy) {
				t.Errorf("reason %q, want it to contain %q", got.StateReason, tt.wantWhy)
			}
			_, err = cs.CoreV1().Nodes().Get(ctx, "gpu-8", metav1.GetOptions{})
			if kept := err == nil; kept != (tt.exit != 0) {
				t.Errorf("Node kept %v after exit %d", kept, tt.exit)
			}
			var reported bool
			for _, e := range events(t, st, "gpu-8") {
				reported = reported || strings.HasPrefix(e.Reason, "uninstall report from 127.0.0.1: exit status "+strconv.Itoa(tt.exit))
				if strings.Contains(e.Reason, uninstallToken) {
					t.Errorf("event carries the token: %q", e.Reason)
				}
			}
			if !reported {
				t.Errorf("no event records the host's report")
			}
		})
	}
}
