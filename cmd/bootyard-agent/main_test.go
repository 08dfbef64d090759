package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"
)

func TestFetchTask_RetriesWhileBootyardIsUnavailableButNotOnAFinalAnswer(t *testing.T) {
	tests := []struct {
		name      string
		failures  int
		status    int
		wantErr   error
		wantCalls int64
	}{
		{"503 twice, then the task", 2, http.StatusServiceUnavailable, nil, 3},
		{"401 is final", 5, http.StatusUnauthorized, errTokenRejected, 1},
		{"409 is final", 5, http.StatusConflict, errStateChanged, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if calls.Add(1) <= int64(tt.failures) {
					w.WriteHeader(tt.status)
					return
				}
				io.WriteString(w, `{"node":"cp-1","action":"install"}`)
			}))
			defer srv.Close()
			base, _ := url.Parse(srv.URL)
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			task, err := fetchTask(context.Background(), log, newAPIClient(base, "tok"), 10*time.Millisecond)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && task.Node != "cp-1") {
				t.Fatalf("task %+v, err %v; want err %v", task, err, tt.wantErr)
			}
			if calls.Load() != tt.wantCalls {
				t.Errorf("%d calls, want %d", calls.Load(), tt.wantCalls)
			}
		})
	}
}
