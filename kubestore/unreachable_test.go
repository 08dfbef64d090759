package kubestore_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/bootyard/bootyard/kubestore"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
	"github.com/bootyard/bootyard/store/storetest"
)

// cutProxy forwards TCP from a loopback port to the API server until cut, which closes
// the listener and every connection: to the store behind it, the API server is gone.
// restore listens on the same port again.
type cutProxy struct {
	t      *testing.T
	addr   string
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	p := &cutProxy{t: t, target: target}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.cut)
	return p
}

func (p *cutProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *cutProxy) restore() {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("listen again on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

// TestUnreachable_KnownLeasesRenewNewAddressesWait cuts the store off its API server:
// the renewal of a lease it knows is accepted from the cache and written when the API
// server is back, a new address is refused, reads keep answering from the cache, and
// nothing is lost.
func TestUnreachable_KnownLeasesRenewNewAddressesWait(t *testing.T) {
	api := startAPI(t)
	ctx := context.Background()
	const ns = "cut-off"
	if _, err := api.Admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(api.Host)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newCutProxy(t, u.Host)
	cfg := rest.CopyConfig(api.AdminConfig)
	cfg.Host = "https://" + proxy.addr
	s, err := kubestore.New(ctx, cfg, kubestore.Options{Namespace: ns, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })

	if _, err := s.ImportNode(ctx, node.Node{Name: "w-1", MACs: []node.MAC{storetest.MAC(1)}, Role: node.RoleWorker}, "test"); err != nil {
		t.Fatal(err)
	}
	ip1, ip2 := netip.MustParseAddr("10.8.0.10"), netip.MustParseAddr("10.8.0.11")
	now := time.Now().UTC()
	if err := s.PutLeases(ctx, store.Lease{IP: ip1, MAC: storetest.MAC(1), State: store.LeaseActive, Expires: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}

	proxy.cut()
	renewed := now.Add(2 * time.Hour)
	if err := s.PutLeases(ctx, store.Lease{IP: ip1, MAC: storetest.MAC(1), State: store.LeaseActive, Expires: renewed}); err != nil {
		t.Fatalf("a known lease's renewal while the API server is unreachable: %v", err)
	}
	if l, err := s.LeaseForMAC(ctx, storetest.MAC(1)); err != nil || !l.Expires.Equal(renewed) {
		t.Errorf("the renewed lease reads %+v, %v", l, err)
	}
	err = s.PutLeases(ctx, store.Lease{IP: ip2, MAC: storetest.MAC(2), State: store.LeaseActive, Expires: renewed})
	var failed store.LeaseErrors
	if !errors.As(err, &failed) || failed[ip2] == nil {
		t.Errorf("a new address while the API server is unreachable: %v, want it refused", err)
	}
	// A renewal for another MAC than the cached holder's is a new claim, refused too.
	if err := s.PutLeases(ctx, store.Lease{IP: ip1, MAC: storetest.MAC(3), State: store.LeaseActive, Expires: renewed}); err == nil {
		t.Error("another MAC took a cached address while the API server was unreachable")
	}
	if mac, err := s.MACForIP(ctx, ip1); err != nil || mac != storetest.MAC(1) {
		t.Errorf("MACForIP from the cache: %s, %v", mac, err)
	}
	if n, err := s.NodeByMAC(ctx, storetest.MAC(1)); err != nil || n.Name != "w-1" {
		t.Errorf("NodeByMAC from the cache: %+v, %v", n, err)
	}
	if got := s.PendingRenewals(); got != 1 {
		t.Errorf("%d renewals queued, want 1", got)
	}

	proxy.restore()
	deadline := time.Now().Add(2 * time.Minute)
	for s.PendingRenewals() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the queued renewal was never written")
		}
		time.Sleep(50 * time.Millisecond)
	}
	raw, err := api.Admin.CoreV1().RESTClient().Get().AbsPath("/apis/bootyard.io/v1alpha1/namespaces", ns, "bootyardleaseblocks", "10.8.0.0-26").DoRaw(ctx) // 10.8.0.10's block
	if err != nil || !strings.Contains(string(raw), renewed.Format(time.RFC3339Nano)) || !strings.Contains(string(raw), storetest.MAC(1).String()) {
		t.Errorf("the API server's lease after the outage: %v\n%s", err, raw)
	}
	if err := s.PutLeases(ctx, store.Lease{IP: ip2, MAC: storetest.MAC(2), State: store.LeaseActive, Expires: renewed}); err != nil {
		t.Errorf("the new address once the API server is back: %v", err)
	}
}
