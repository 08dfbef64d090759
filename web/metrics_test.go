package web

import (
	"context"
	"io"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/boot"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

func TestMetrics_InstallAndWipeDurationsAreObservedFromTransitions(t *testing.T) {
	m := NewMetrics(&MetricSources{})
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	at := func(s node.State, d time.Duration) node.Node { return node.Node{State: s, StateSince: t0.Add(d)} }
	tests := []struct {
		before, after node.Node
	}{
		{at(node.StateProvisioning, 0), at(node.StateInstalled, 90*time.Second)}, // install, 90 s
		{at(node.StateWiping, 0), at(node.StateDeleted, 200*time.Second)},        // wipe, 200 s
		{at(node.StateRegistered, 0), at(node.StateProvisioning, time.Second)},   // neither
		{at(node.StateInstalled, 0), at(node.StateInstalled, time.Second)},       // no change
	}
	for _, tc := range tests {
		m.ObserveTransition(tc.before, tc.after)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		"bootyard_install_duration_seconds_count 1", "bootyard_install_duration_seconds_sum 90",
		"bootyard_wipe_duration_seconds_count 1", "bootyard_wipe_duration_seconds_sum 200",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
}

func TestMetrics_StoreEvictionsAreCounted(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(filepath.Join(t.TempDir(), "bootyard.db"), store.Options{Limits: store.Limits{MaxDiscovered: 2, MaxNodeEvents: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for i := range 5 {
		mac := node.MAC{0x02, 0, 0, 0, 0, byte(i + 1)}
		if err := st.RecordBoot(ctx, mac, node.BootInfo{Firmware: "bios", LastSeen: at.Add(time.Duration(i) * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	// The last discovered node's history: its first event plus two more, one kept.
	last := node.DefaultName(node.MAC{0x02, 0, 0, 0, 0, 5})
	if err := st.AppendEvents(ctx, node.NewEvent(last, node.EventLog, "a", "agent", at), node.NewEvent(last, node.EventLog, "b", "agent", at)); err != nil {
		t.Fatal(err)
	}
	m := NewMetrics(&MetricSources{Bounds: st.BoundStats})
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{"bootyard_discovered_evicted_total 3", "bootyard_node_events_dropped_total 2"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
}

func TestMetrics_PanicsAndSpoofedReleasesAreExported(t *testing.T) {
	m := NewMetrics(&MetricSources{
		DHCP: func() boot.DHCPStats { return boot.DHCPStats{Panics: 2, ReleaseSpoofed: 3, DeclineSpoofed: 4} },
		TFTP: func() boot.TFTPStats { return boot.TFTPStats{Panics: 5, Busy: 6} },
	})
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`bootyard_dhcp_packets_total{result="panic",type="any"} 2`,
		`bootyard_dhcp_packets_total{result="spoofed",type="release"} 3`,
		`bootyard_dhcp_packets_total{result="spoofed",type="decline"} 4`,
		`bootyard_tftp_transfers_total{result="panic"} 5`,
		`bootyard_tftp_transfers_total{result="busy"} 6`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
}
