package kubestore

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/node"
)

// fakeAPI is a RoundTripper standing in for the API server's connection: it answers,
// or fails as the network would, and counts what reached it.
type fakeAPI struct {
	fail error
	sent []string
}

func (f *fakeAPI) RoundTrip(req *http.Request) (*http.Response, error) {
	f.sent = append(f.sent, req.Method)
	if f.fail != nil {
		return nil, f.fail
	}
	return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(strings.NewReader("{}")), Request: req}, nil
}

// TestReach_WritesFailAtOnceFromTheFirstUnansweredRequestUntilAnAnswer drives the
// cut-off through a sequence of requests: which reach the API server, and how each
// failure reads to callers (a timeout, node.ErrUnavailable) and to the cut-off.
func TestReach_WritesFailAtOnceFromTheFirstUnansweredRequestUntilAnAnswer(t *testing.T) {
	timeout := &net.OpError{Op: "dial", Net: "tcp", Err: context.DeadlineExceeded}
	steps := []struct {
		name     string
		fail     error // the network's answer to the next request that reaches it
		method   string
		wantSent bool
		wantErr  bool
		wantDown bool
	}{
		{"an answered write", nil, http.MethodPut, true, false, false},
		{"a caller that gives up says nothing of the API server", context.Canceled, http.MethodPut, true, true, false},
		{"a write that times out", timeout, http.MethodPut, true, true, true},
		{"the next write is not sent", nil, http.MethodPost, false, true, true},
		{"nor a deletion", nil, http.MethodDelete, false, true, true},
		{"a read is sent, and times out too", timeout, http.MethodGet, true, true, true},
		{"a read that is answered ends the cut-off", nil, http.MethodGet, true, false, false},
		{"writes are sent again", nil, http.MethodPut, true, false, false},
		{"a refused connection starts one", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, http.MethodPatch, true, true, true},
	}
	api := &fakeAPI{}
	r := &reach{log: slog.New(slog.DiscardHandler), now: time.Now}
	client := &http.Client{Transport: r.wrap(api)}
	for _, st := range steps {
		api.fail = st.fail
		before := len(api.sent)
		req, _ := http.NewRequest(st.method, "https://api.invalid/apis/bootyard.io/v1alpha1/x", nil)
		resp, err := client.Do(req)
		if resp != nil {
			resp.Body.Close()
		}
		if sent := len(api.sent) > before; sent != st.wantSent {
			t.Errorf("%s: sent %v, want %v", st.name, sent, st.wantSent)
		}
		if (err != nil) != st.wantErr {
			t.Errorf("%s: err %v, want an error: %v", st.name, err, st.wantErr)
		}
		if _, down := r.since(); down != st.wantDown {
			t.Errorf("%s: cut off %v, want %v", st.name, down, st.wantDown)
		}
		if err != nil && st.wantDown {
			var ue *url.Error
			if !errors.Is(err, node.ErrUnavailable) || !unreachable(err) || !errors.As(err, &ue) || !ue.Timeout() {
				t.Errorf("%s: %v is not an unavailable, unreachable timeout to callers", st.name, err)
			}
		}
	}
}
