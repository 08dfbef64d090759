package web

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/bootyard/bootyard/store"
)

func TestReadyz_NotReadyUntilTheStoreSaysSoAndNeedsNoCredentials(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "bootyard.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var synced atomic.Bool
	s, err := New(Config{AdminToken: testToken, Ready: synced.Load}, Deps{Inventory: st})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	get := func(path string) int {
		t.Helper()
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	tests := []struct {
		synced              bool
		wantReady, wantLive int
	}{
		{false, http.StatusServiceUnavailable, http.StatusOK},
		{true, http.StatusOK, http.StatusOK},
		{false, http.StatusServiceUnavailable, http.StatusOK}, // a cache that lost its watch
	}
	for _, tt := range tests {
		synced.Store(tt.synced)
		if got := get("/readyz"); got != tt.wantReady {
			t.Errorf("synced %v: /readyz = %d, want %d", tt.synced, got, tt.wantReady)
		}
		if got := get("/healthz"); got != tt.wantLive {
			t.Errorf("synced %v: /healthz = %d, want %d", tt.synced, got, tt.wantLive)
		}
	}
}
