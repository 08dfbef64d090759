package kubestore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/bootyard/bootyard/internal/kubetest"
	"github.com/bootyard/bootyard/kubestore"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
	"github.com/bootyard/bootyard/store/storetest"
)

// The tests here are what only a shared API server has: two replicas, each a Store with
// its own caches, writing one inventory.

func TestReplicas(t *testing.T) {
	api := startAPI(t)
	tests := []struct {
		name string
		fn   func(t *testing.T, api *kubetest.API, ns string)
	}{
		{"OneTransitionHasOneWinnerAcrossReplicas", testReplicaTransition},
		{"AnAddressIsClaimedByOneReplicaOnly", testReplicaLeaseClaim},
		{"ConcurrentClaimsInOneBlockAreAllKept", testReplicaBlockClaims},
		{"AMACIsImportedByOneReplicaOnly", testReplicaMACClaim},
		{"OneClusterInitServerWhenReplicasImportTheFirstServers", testReplicaClusterInit},
		{"ServersAskingTwoReplicasJoinOneAtATime", testReplicaJoinTurn},
		{"TwoDeletionsCannotBothPassTheQuorumCheck", testReplicaQuorum},
		{"SecretsNeverReachACustomResource", testSecretsStayInSecrets},
		{"ATokenChangeReachesTheOtherReplica", testReplicaToken},
		{"AnObjectWithoutStatusReadsAsItsImport", testStatuslessObject},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, api, fmt.Sprintf("replicas-%d", i)) })
	}
}

// twoReplicas opens two stores on one namespace.
func twoReplicas(t *testing.T, api *kubetest.API, ns string) (*kubestore.Store, *kubestore.Store) {
	t.Helper()
	return openIn(t, api, ns, store.Limits{}), openIn(t, api, ns, store.Limits{})
}

// waitSeen waits until s's cache holds the node in state.
func waitSeen(t *testing.T, s *kubestore.Store, name string, state node.State) {
	t.Helper()
	kubetest.WaitFor(t, time.Minute, name+" "+string(state)+" in the other replica's cache", func() bool {
		n, err := s.GetNode(context.Background(), name)
		return err == nil && n.State == state
	})
}

func testReplicaTransition(t *testing.T, api *kubetest.API, ns string) {
	ctx := context.Background()
	a, b := twoReplicas(t, api, ns)
	for round := range 5 {
		name := fmt.Sprintf("w-%d", round)
		if _, err := a.ImportNode(ctx, node.Node{Name: name, MACs: []node.MAC{storetest.MAC(round + 1)}, Role: node.RoleWorker}, "test"); err != nil {
			t.Fatal(err)
		}
		waitSeen(t, b, name, node.StateRegistered)
		errs := onBoth(a, b, func(i int, s *kubestore.Store) error {
			_, err := s.UpdateNode(ctx, name, func(n *node.Node) ([]node.Event, error) {
				if n.State != node.StateRegistered {
					return nil, fmt.Errorf("already %s: %w", n.State, node.ErrConflict)
				}
				ev, err := n.Transition(node.StateProvisioning, fmt.Sprintf("replica %d", i), "test", time.Now().UTC())
				return []node.Event{ev}, err
			})
			return err
		})
		if (errs[0] == nil) == (errs[1] == nil) {
			t.Fatalf("round %d: replica errors %v and %v, want exactly one winner", round, errs[0], errs[1])
		}
		events, err := a.Events(ctx, name, 0)
		if err != nil {
			t.Fatal(err)
		}
		provisioning := 0
		for _, e := range events {
			if e.To == node.StateProvisioning {
				provisioning++
			}
		}
		if provisioning != 1 {
			t.Errorf("round %d: %d provisioning transitions recorded, want 1", round, provisioning)
		}
	}
}

func testReplicaLeaseClaim(t *testing.T, api *kubetest.API, ns string) {
	ctx := context.Background()
	a, b := twoReplicas(t, api, ns)
	exp := time.Now().UTC().Add(time.Hour)
	for i := range 10 {
		ip := netip.AddrFrom4([4]byte{10, 9, 0, byte(10 + i)})
		errs := onBoth(a, b, func(r int, s *kubestore.Store) error {
			return s.PutLeases(ctx, store.Lease{IP: ip, MAC: storetest.MAC(100*r + i + 1), State: store.LeaseActive, Expires: exp})
		})
		if (errs[0] == nil) == (errs[1] == nil) {
			t.Fatalf("address %s: claims ended %v and %v, want exactly one holder", ip, errs[0], errs[1])
		}
		for _, err := range errs {
			if err != nil && !errors.Is(err, node.ErrConflict) {
				t.Errorf("the losing claim's error %v is not a conflict", err)
			}
		}
	}
	// A replica whose cache has not seen a claim still cannot take the address.
	ip := netip.MustParseAddr("10.9.1.1")
	if err := a.PutLeases(ctx, store.Lease{IP: ip, MAC: storetest.MAC(1), State: store.LeaseActive, Expires: exp}); err != nil {
		t.Fatal(err)
	}
	err := b.PutLeases(ctx, store.Lease{IP: ip, MAC: storetest.MAC(2), State: store.LeaseActive, Expires: exp})
	if !errors.Is(err, node.ErrConflict) {
		t.Errorf("a second claim of a held address: %v, want ErrConflict", err)
	}
	// The holder renews; an expired lease may change hands.
	if err := b.PutLeases(ctx, store.Lease{IP: ip, MAC: storetest.MAC(1), State: store.LeaseActive, Expires: exp.Add(time.Hour)}); err != nil {
		t.Errorf("the holder's renewal through the other replica: %v", err)
	}
	old := netip.MustParseAddr("10.9.1.2")
	if err := a.PutLeases(ctx, store.Lease{IP: old, MAC: storetest.MAC(3), State: store.LeaseActive, Expires: time.Now().Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if err := b.PutLeases(ctx, store.Lease{IP: old, MAC: storetest.MAC(4), State: store.LeaseActive, Expires: exp}); err != nil {
		t.Errorf("taking an expired address: %v", err)
	}
}

func testReplicaQuorum(t *testing.T, api *kubetest.API, ns string) {
	ctx := context.Background()
	a, b := twoReplicas(t, api, ns)
	// Four servers, one of them down: removing one up server leaves 2 of 3 up, removing
	// a second leaves 1 of 2 up, below the majority.
	for i := range 4 {
		name := fmt.Sprintf("s-%d", i)
		if _, err := a.ImportNode(ctx, node.Node{Name: name, MACs: []node.MAC{storetest.MAC(i + 1)}, Role: node.RoleServer}, "test"); err != nil {
			t.Fatal(err)
		}
		storetest.Move(t, a, name, node.StateProvisioning, node.StateInstalled, node.StateActive)
		if i == 3 {
			if _, err := a.UpdateNode(ctx, name, func(n *node.Node) ([]node.Event, error) {
				n.Cluster = &node.ClusterStatus{Ready: false, ObservedAt: time.Now().UTC()}
				return nil, nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		waitSeen(t, b, name, node.StateActive)
	}
	// The premise: one after the other, the second deletion is refused.
	all, _ := a.QuorumNodes(ctx)
	opts := func(name string) node.DeleteOptions {
		return node.DeleteOptions{Confirm: name, ClusterConnected: true, Now: time.Now().UTC()}
	}
	first := find(all, "s-1")
	if _, err := node.PlanDeletion(&first, all, opts("s-1")); err != nil {
		t.Fatalf("premise: deleting s-1 alone is refused: %v", err)
	}
	all = replace(all, first)
	second := find(all, "s-2")
	if _, err := node.PlanDeletion(&second, all, opts("s-2")); err == nil {
		t.Fatal("premise: deleting s-2 after s-1 passes the quorum check; the test proves nothing")
	}
	errs := onBoth(a, b, func(i int, s *kubestore.Store) error {
		name := fmt.Sprintf("s-%d", i+1)
		_, _, err := s.DeleteNode(ctx, name, opts(name))
		return err
	})
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Fatalf("deletions ended %v and %v, want exactly one to pass", errs[0], errs[1])
	}
	for _, err := range errs {
		if err != nil && !errors.Is(err, node.ErrRefused) {
			t.Errorf("the refused deletion's error %v is not the quorum refusal", err)
		}
	}
	deleting := 0
	kubetest.WaitFor(t, time.Minute, "one server deleting in the cache", func() bool {
		deleting = 0
		for _, name := range []string{"s-1", "s-2"} {
			if n, _ := b.GetNode(ctx, name); n.State == node.StateDeleting {
				deleting++
			}
		}
		return deleting == 1
	})
}

func find(all []node.Node, name string) node.Node {
	for _, n := range all {
		if n.Name == name {
			return n
		}
	}
	return node.Node{}
}

func replace(all []node.Node, n node.Node) []node.Node {
	for i := range all {
		if all[i].Name == n.Name {
			all[i] = n
		}
	}
	return all
}

// testSecretsStayInSecrets reads every bootyard.io object as the API server stores it
// and looks for the secret values: the join token, an installer variable and a node
// secret must be in Secrets only.
func testSecretsStayInSecrets(t *testing.T, api *kubetest.API, ns string) {
	ctx := context.Background()
	s := openIn(t, api, ns, store.Limits{})
	const token, proxy, bmc = "K10tok::server:s3cr3t-token", "http://user:pr0xy-pass@proxy:3128", "bmc-hunter2"
	if _, err := s.UpdateClusterSettings(ctx, func(c *node.ClusterSettings) error {
		c.ServerURL, c.Token, c.InstallEnv = "https://10.0.0.1:6443", token, map[string]string{"HTTPS_PROXY": proxy}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ImportNode(ctx, node.Node{Name: "w-1", MACs: []node.MAC{storetest.MAC(1)}, Role: node.RoleWorker}, "test"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetNodeSecret(ctx, "w-1", "bmc-password", []byte(bmc)); err != nil {
		t.Fatal(err)
	}
	cfg := rest.CopyConfig(api.AdminConfig)
	cfg.APIPath, cfg.GroupVersion = "/apis", &metav1.SchemeGroupVersion
	var crs strings.Builder
	for _, res := range []string{"bootyardnodes", "bootyardsettings", "bootyardimages", "bootyardleaseblocks", "bootyardevents"} {
		raw, err := api.Admin.CoreV1().RESTClient().Get().AbsPath("/apis/bootyard.io/v1alpha1/namespaces", ns, res).DoRaw(ctx)
		if err != nil {
			t.Fatalf("list %s: %v", res, err)
		}
		crs.Write(raw)
	}
	for _, secret := range []string{token, "pr0xy-pass", bmc} {
		if strings.Contains(crs.String(), secret) {
			t.Errorf("a custom resource holds %q", secret)
		}
	}
	if !strings.Contains(crs.String(), "https://10.0.0.1:6443") {
		t.Error("the settings object is not where the test looked")
	}
	secrets, err := api.Admin.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, sec := range secrets.Items {
		for _, v := range sec.Data {
			for _, secret := range []string{token, proxy, bmc} {
				if strings.Contains(string(v), secret) {
					found[secret] = true
				}
			}
		}
	}
	if len(found) != 3 {
		t.Errorf("secrets found in Secrets: %v, want all three", found)
	}
}

// testStatuslessObject: a replica that dies between creating a node and writing its
// status leaves an object without one; it must read as what the create meant.
func testStatuslessObject(t *testing.T, api *kubetest.API, ns string) {
	ctx := context.Background()
	s := openIn(t, api, ns, store.Limits{})
	body := fmt.Sprintf(`{"apiVersion":"bootyard.io/v1alpha1","kind":"BootyardNode","metadata":{"name":"half"},"spec":{"macs":[%q],"role":"worker"}}`, storetest.MAC(7).String())
	if err := api.Admin.CoreV1().RESTClient().Post().AbsPath("/apis/bootyard.io/v1alpha1/namespaces", ns, "bootyardnodes").
		SetHeader("Content-Type", "application/json").Body([]byte(body)).Do(ctx).Error(); err != nil {
		t.Fatal(err)
	}
	kubetest.WaitFor(t, time.Minute, "the object in the cache", func() bool {
		_, err := s.GetNode(ctx, "half")
		return err == nil
	})
	n, err := s.NodeByMAC(ctx, storetest.MAC(7))
	if err != nil || n.State != node.StateRegistered || n.StateSince.IsZero() {
		t.Fatalf("status-less object reads as %+v, %v; want registered", n, err)
	}
	storetest.Move(t, s, "half", node.StateProvisioning)
	// Invalid objects are refused by the CRD's schema, before Bootyard reads them.
	bad := `{"apiVersion":"bootyard.io/v1alpha1","kind":"BootyardNode","metadata":{"name":"bad"},"spec":{"macs":["NOT-A-MAC"],"role":"boss"}}`
	err = api.Admin.CoreV1().RESTClient().Post().AbsPath("/apis/bootyard.io/v1alpha1/namespaces", ns, "bootyardnodes").
		SetHeader("Content-Type", "application/json").Body([]byte(bad)).Do(ctx).Error()
	if err == nil || !strings.Contains(err.Error(), "spec.role") || !strings.Contains(err.Error(), "spec.macs") {
		t.Errorf("the schema let an invalid node in: %v", err)
	}
}

// testReplicaToken changes only the token on one replica: the other serves it from its
// cache, which re-reads the Secret because the settings object records the Secret's
// version (so a token change alone is a new object version).
func testReplicaToken(t *testing.T, api *kubetest.API, ns string) {
	ctx := context.Background()
	a, b := twoReplicas(t, api, ns)
	setToken := func(token string) {
		t.Helper()
		if _, err := a.UpdateClusterSettings(ctx, func(c *node.ClusterSettings) error {
			c.ServerURL, c.Token = "https://10.0.0.1:6443", node.Secret(token)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	objectVersion := func() string {
		t.Helper()
		var o struct {
			Metadata struct {
				ResourceVersion string `json:"resourceVersion"`
			} `json:"metadata"`
		}
		raw, err := api.Admin.CoreV1().RESTClient().Get().AbsPath("/apis/bootyard.io/v1alpha1/namespaces", ns, "bootyardsettings", "cluster").DoRaw(ctx)
		if apierrors.IsNotFound(err) {
			return "" // not written yet
		}
		if err == nil {
			err = json.Unmarshal(raw, &o)
		}
		if err != nil {
			t.Fatal(err)
		}
		return o.Metadata.ResourceVersion
	}
	for _, token := range []string{"K10first::server:one", "K10second::server:two"} {
		before := objectVersion()
		setToken(token)
		if objectVersion() == before {
			t.Errorf("setting the token %s left the settings object's version as it was", token)
		}
		kubetest.WaitFor(t, time.Minute, "the other replica to serve the new token", func() bool {
			c, err := b.ClusterSettings(ctx)
			return err == nil && c.Token.Reveal() == token
		})
	}
}

// testReplicaMACClaim imports one MAC under two names through two replicas at once,
// which neither cache can catch: never both stand (both may be refused when they land in
// one second: then importing again works).
func testReplicaMACClaim(t *testing.T, api *kubetest.API, ns string) {
	ctx := context.Background()
	a, b := twoReplicas(t, api, ns)
	for round := range 5 {
		mac := storetest.MAC(200 + round)
		errs := onBoth(a, b, func(i int, s *kubestore.Store) error {
			_, err := s.ImportNode(ctx, node.Node{Name: fmt.Sprintf("m%d-r%d", round, i), MACs: []node.MAC{mac}, Role: node.RoleWorker}, "test")
			return err
		})
		if errs[0] == nil && errs[1] == nil {
			t.Fatalf("round %d: both imports of %s stand", round, mac)
		}
		for _, err := range errs {
			if err != nil && !errors.Is(err, node.ErrConflict) {
				t.Errorf("round %d: the refused import's error %v is not a conflict", round, err)
			}
		}
		if errs[0] != nil && errs[1] != nil {
			t.Logf("round %d: both refused (one second); importing again", round)
			kubetest.WaitFor(t, time.Minute, "the refused imports to leave the cache", func() bool {
				_, err := a.NodeByMAC(ctx, mac)
				return errors.Is(err, node.ErrNotFound)
			})
			if _, err := a.ImportNode(ctx, node.Node{Name: fmt.Sprintf("m%d-again", round), MACs: []node.MAC{mac}, Role: node.RoleWorker}, "test"); err != nil {
				t.Fatalf("round %d: importing again: %v", round, err)
			}
		}
		raw, err := api.Admin.CoreV1().RESTClient().Get().AbsPath("/apis/bootyard.io/v1alpha1/namespaces", ns, "bootyardnodes").DoRaw(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(raw), `"`+mac.String()+`"`); n != 1 {
			t.Errorf("round %d: %d stored nodes hold %s, want 1", round, n, mac)
		}
	}
}

// testReplicaClusterInit imports the first two servers through two replicas at once: each
// cache sees no server, yet exactly one may start the cluster.
func testReplicaClusterInit(t *testing.T, api *kubetest.API, ns string) {
	ctx := context.Background()
	a, b := twoReplicas(t, api, ns)
	got := make([]node.Node, 2)
	errs := onBoth(a, b, func(i int, s *kubestore.Store) error {
		var err error
		got[i], err = s.ImportNode(ctx, node.Node{Name: fmt.Sprintf("s-%d", i), MACs: []node.MAC{storetest.MAC(300 + i)}, Role: node.RoleServer}, "test")
		return err
	})
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("imports: %v, %v", errs[0], errs[1])
	}
	if got[0].ClusterInit == got[1].ClusterInit {
		t.Fatalf("cluster-init: s-0 %v, s-1 %v; want exactly one", got[0].ClusterInit, got[1].ClusterInit)
	}
	kubetest.WaitFor(t, time.Minute, "both replicas to agree", func() bool {
		inits := 0
		for _, name := range []string{"s-0", "s-1"} {
			na, errA := a.GetNode(ctx, name)
			nb, errB := b.GetNode(ctx, name)
			if errA != nil || errB != nil || na.ClusterInit != nb.ClusterInit {
				return false
			}
			if na.ClusterInit {
				inits++
			}
		}
		return inits == 1
	})
}

// onBoth runs fn on both replicas at once and returns their errors.
// testReplicaBlockClaims is the risk of storing leases by block: two replicas, and many
// writers in each, claim addresses of one block at once. Every claim of a free address
// must be kept (a write on a stale copy of the block would silently drop the others'),
// and an address both replicas claim still has one holder.
func testReplicaBlockClaims(t *testing.T, api *kubetest.API, ns string) {
	ctx := context.Background()
	a, b := twoReplicas(t, api, ns)
	exp := time.Now().UTC().Add(time.Hour)
	// Addresses 10.9.2.0-47 (one /26 block): replica a claims the even ones, b the odd
	// ones, each address from its own goroutine; 48-63 are claimed by both.
	want := map[netip.Addr]node.MAC{}
	var wg sync.WaitGroup
	errs := make([]error, 64*2)
	for i := range 64 {
		ip := netip.AddrFrom4([4]byte{10, 9, 2, byte(i)})
		for r, s := range []*kubestore.Store{a, b} {
			if i < 48 && i%2 != r {
				continue
			}
			mac := storetest.MAC(1000*(r+1) + i)
			if i < 48 {
				want[ip] = mac
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[2*i+r] = s.PutLeases(ctx, store.Lease{IP: ip, MAC: mac, State: store.LeaseActive, Expires: exp})
			}()
		}
	}
	wg.Wait()
	for i := range 64 {
		if i < 48 {
			if err := errs[2*i+i%2]; err != nil {
				t.Errorf("claim of free address 10.9.2.%d: %v", i, err)
			}
			continue
		}
		if (errs[2*i] == nil) == (errs[2*i+1] == nil) {
			t.Errorf("address 10.9.2.%d: claims ended %v and %v, want exactly one holder", i, errs[2*i], errs[2*i+1])
		}
		for _, err := range errs[2*i : 2*i+2] {
			if err != nil && !errors.Is(err, node.ErrConflict) {
				t.Errorf("address 10.9.2.%d: the losing claim's error %v is not a conflict", i, err)
			}
		}
	}
	// A third replica, whose cache comes from the API server alone, sees every claim.
	c := openIn(t, api, ns, store.Limits{})
	leases, err := c.Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[netip.Addr]node.MAC{}
	for _, l := range leases {
		got[l.IP] = l.MAC
	}
	for ip, mac := range want {
		if got[ip] != mac {
			t.Errorf("%s holds %s on the API server, want %s", ip, got[ip], mac)
		}
	}
	if len(got) != 64 {
		t.Errorf("%d addresses stored, want 64", len(got))
	}
}

func onBoth(a, b *kubestore.Store, fn func(i int, s *kubestore.Store) error) []error {
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, s := range []*kubestore.Store{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(i, s)
		}()
	}
	wg.Wait()
	return errs
}
