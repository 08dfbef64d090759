package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bootyard/bootyard/bmc"
	"github.com/bootyard/bootyard/cluster"
	"github.com/bootyard/bootyard/internal/kubetest"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
	"github.com/bootyard/bootyard/web"
)

// countingRedfish is a Redfish BMC over plain HTTP (no sessions: basic auth) with one
// system, that counts the power reads of each source address: a replica dials it from its
// own loopback address, so the BMC can tell which replica polled.
type countingRedfish struct {
	mu      sync.Mutex
	power   string // On or Off
	failing bool   // answer 503, as a BMC busy or rebooting
	reads   map[string]int
}

func (b *countingRedfish) set(power string, failing bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.power, b.failing = power, failing
}

func (b *countingRedfish) readsFrom(src string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.reads[src]
}

func (b *countingRedfish) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	defer b.mu.Unlock()
	reply := func(v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	switch strings.TrimSuffix(r.URL.Path, "/") {
	case "/redfish/v1":
		reply(map[string]any{"@odata.id": "/redfish/v1/", "Id": "RootService", "RedfishVersion": "1.6.0",
			"Systems": map[string]string{"@odata.id": "/redfish/v1/Systems"}})
	case "/redfish/v1/Systems":
		if b.failing {
			http.Error(w, `{"error":{"message":"busy"}}`, http.StatusServiceUnavailable)
			return
		}
		reply(map[string]any{"@odata.id": "/redfish/v1/Systems", "Members@odata.count": 1,
			"Members": []map[string]string{{"@odata.id": "/redfish/v1/Systems/1"}}})
	case "/redfish/v1/Systems/1":
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		b.reads[host]++
		reply(map[string]any{"@odata.id": "/redfish/v1/Systems/1", "@odata.type": "#ComputerSystem.v1_13_0.ComputerSystem",
			"Id": "1", "Name": "System 1", "PowerState": b.power})
	default:
		http.NotFound(w, r)
	}
}

// bmcReplica is one `serve --store kubernetes --leader-elect` as far as the BMC goes: its
// own store (caches), the BMC options and cluster integration wired as serve wires them.
type bmcReplica struct {
	name, src string
	st        store.Backend
	deps      web.Deps
	cancel    context.CancelFunc
	g         *errgroup.Group
	logPath   string
}

func startBMCReplica(t *testing.T, api *kubetest.API, ns, name, src string) *bmcReplica {
	t.Helper()
	r := &bmcReplica{name: name, src: src, logPath: filepath.Join(t.TempDir(), name+".log")}
	logFile, err := os.Create(r.logPath) // each log line is one write(2): safe from every goroutine
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelDebug})).With(slog.String("replica", name))
	o := &serveOptions{dataDir: t.TempDir(), store: storeOptions{backend: storeKubernetes, namespace: ns}}
	o.cluster = clusterOptions{kubeconfig: api.AdminKubeconfig, drainTimeout: time.Minute, rebootTimeout: time.Minute,
		helperNamespace: cluster.DefaultHelperNamespace, helperImage: cluster.DefaultHelperImage,
		leader: leaderOptions{enabled: true, namespace: ns, name: cluster.DefaultLeaseName, identity: name,
			leaseDuration: 4 * time.Second, renewDeadline: 3 * time.Second, retryPeriod: 500 * time.Millisecond}}
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	o.bmc = bmcOptions{timeout: 5 * time.Second, pollInterval: time.Second, concurrency: 2,
		httpClient: &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext, DisableKeepAlives: true}}}
	hooks := &updateHooks{}
	st, _, err := o.openStore(t.Context(), log, hooks.run)
	if err != nil {
		t.Fatalf("%s: open the store: %v", name, err)
	}
	r.st = st
	ctx, cancel := context.WithCancel(t.Context())
	g, gctx := errgroup.WithContext(ctx)
	r.cancel, r.g = cancel, g
	r.deps = web.Deps{Inventory: st}
	if err := o.bmc.start(gctx, g, st, hooks, web.NewMetrics(&web.MetricSources{}), &r.deps, &o.cluster, log); err != nil {
		t.Fatal(err)
	}
	if _, err := o.cluster.start(gctx, g, st, &r.deps, log); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.stop()
		st.Close()
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(r.logPath)
			t.Logf("%s log:\n%s", name, b)
		}
	})
	return r
}

// stop is the replica's shutdown: its work stops, then it releases the Lease.
func (r *bmcReplica) stop() {
	r.cancel()
	_ = r.g.Wait()
}

func (r *bmcReplica) shows(t *testing.T) bmc.Observation {
	t.Helper()
	n, err := r.deps.Inventory.GetNode(t.Context(), "m1") // as the replica's pages read it
	if err != nil {
		return bmc.Observation{} // not in this replica's cache yet: the callers wait
	}
	o, _ := r.deps.PowerStates.Observation(n)
	return o
}

// TestHA_OnlyTheLeaderPollsTheBMCAndEveryReplicaShowsItsReading: two replicas on one API
// server with leader election and one BMC. Only the Lease's holder polls it (the BMC
// counts reads by source address); the other shows the leader's reading from the node
// record, through an on → off change and the BMC failing and coming back; each change is
// one event, not one per replica. When the leader stops, the other takes over the
// polling, and the stopped one shows the new leader's record.
func TestHA_OnlyTheLeaderPollsTheBMCAndEveryReplicaShowsItsReading(t *testing.T) {
	api := kubetest.Start(t)
	const ns = "bmc-ha"
	if _, err := api.Admin.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	api.InstallCRDs(t, filepath.Join(kubetest.Root(t), "deploy", "crds"))
	fake := &countingRedfish{power: "On", reads: map[string]int{}}
	srv := httptest.NewServer(fake)
	defer srv.Close()

	a := startBMCReplica(t, api, ns, "replica-a", "127.0.0.2")
	b := startBMCReplica(t, api, ns, "replica-b", "127.0.0.3")
	bmcAt, err := node.ParseBMCURL("redfish+http://" + strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	bmcAt.User = "admin"
	mac, _ := node.ParseMAC("52:54:00:aa:00:01")
	if _, err := a.st.ImportNode(t.Context(), node.Node{Name: "m1", MACs: []node.MAC{mac}, Role: node.RoleWorker, BMC: &bmcAt}, "test"); err != nil {
		t.Fatal(err)
	}

	var leader, follower *bmcReplica
	waitFor(t, time.Minute, "one replica polls the BMC three times", func() bool {
		switch {
		case fake.readsFrom(a.src) >= 3:
			leader, follower = a, b
		case fake.readsFrom(b.src) >= 3:
			leader, follower = b, a
		}
		return leader != nil
	})
	if n := fake.readsFrom(follower.src); n != 0 {
		t.Fatalf("the follower %s polled the BMC %d times while %s polled it %d times: every replica polls", follower.name, n, leader.name, fake.readsFrom(leader.src))
	}
	lease, err := api.Admin.CoordinationV1().Leases(ns).Get(t.Context(), cluster.DefaultLeaseName, metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != leader.name {
		t.Fatalf("the Lease %v (err %v) is not held by the polling replica %s", lease.Spec.HolderIdentity, err, leader.name)
	}
	waitFor(t, time.Minute, "the follower shows the leader's reading: on", func() bool {
		o := follower.shows(t)
		return o.Recorded && o.Power == bmc.PowerOn && o.Err == ""
	})

	fake.set("Off", false)
	waitFor(t, time.Minute, "the follower shows off", func() bool { o := follower.shows(t); return o.Power == bmc.PowerOff })
	fake.set("Off", true)
	waitFor(t, time.Minute, "the follower shows the BMC not answering", func() bool { o := follower.shows(t); return o.Err != "" })
	fake.set("Off", false)
	waitFor(t, time.Minute, "the follower shows the BMC answering again", func() bool {
		o := follower.shows(t)
		return o.Err == "" && o.Power == bmc.PowerOff
	})
	if n := fake.readsFrom(follower.src); n != 0 {
		t.Fatalf("the follower polled the BMC %d times", n)
	}

	// The leader stops (SIGTERM: its work stops, then it releases the Lease): the other
	// replica polls now.
	leader.stop()
	stoppedAt := fake.readsFrom(leader.src)
	waitFor(t, time.Minute, "the other replica takes the polling over", func() bool { return fake.readsFrom(follower.src) >= 2 })
	fake.set("On", false)
	waitFor(t, time.Minute, "the new leader sees on", func() bool { o := follower.shows(t); return !o.Recorded && o.Power == bmc.PowerOn })
	waitFor(t, time.Minute, "the stopped replica shows the new leader's record", func() bool {
		o := leader.shows(t)
		return o.Recorded && o.Power == bmc.PowerOn
	})
	if n := fake.readsFrom(leader.src); n != stoppedAt {
		t.Fatalf("the stopped replica polled %d more times", n-stoppedAt)
	}

	// Each change is one event, whichever replica saw it.
	evs, err := follower.st.Events(t.Context(), "m1", 0)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, e := range evs {
		if e.Source == "bmc-poller" {
			reason, _, _ := strings.Cut(e.Reason, ":")
			count[reason]++
		}
	}
	want := map[string]int{"BMC reports power off (was on)": 1, "BMC not answering": 1, "BMC answering again": 1, "BMC reports power on (was off)": 1}
	for reason, n := range want {
		if count[reason] != n {
			t.Errorf("%d events %q, want %d (all the poller's: %v)", count[reason], reason, n, count)
		}
	}
}
