package web

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/node"
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
