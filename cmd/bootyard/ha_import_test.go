package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bootyard/bootyard/node"
)

// haImports is what the importing client saw.
type haImports struct {
	acked  map[string]node.MAC // name → MAC of every import answered 2xx
	errors []clientError
}

type importer struct {
	mu   sync.Mutex
	out  haImports
	at   []time.Time // when each acknowledgement came
	stop func() haImports
}

// waitAcked waits until n imports have been acknowledged after since.
func (im *importer) waitAcked(t *testing.T, n int, since time.Time) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		im.mu.Lock()
		got := 0
		for _, at := range im.at {
			if at.After(since) {
				got++
			}
		}
		im.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d imports acknowledged since %s, want %d", got, since.Format(time.StampMilli), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startImports imports nodes through the replicas' API, two at a time, each worker
// taking the replicas in turn, until stopped. A replica that cannot be reached leaves
// the rotation (as a Service drops an endpoint that fails its probes) and the import
// is sent again to the next one.
func (lab *haLab) startImports(t *testing.T) *importer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	im := &importer{out: haImports{acked: map[string]node.MAC{}}}
	mu, out := &im.mu, &im.out
	down := make([]atomic.Bool, len(lab.replicas))
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			turn := w
			for ctx.Err() == nil {
				i := next.Add(1)
				name := fmt.Sprintf("ha-%05d", i)
				mac := node.MAC{0x0a, 0x73, 0, byte(i >> 16), byte(i >> 8), byte(i)}
				body, _ := json.Marshal(map[string]any{"macs": []string{mac.String()}, "role": "worker", "name": name})
				for tries := 0; tries < len(lab.replicas) && ctx.Err() == nil; tries++ {
					r := turn % len(lab.replicas)
					turn++
					for skip := 0; down[r].Load() && skip < len(lab.replicas); skip++ {
						r = turn % len(lab.replicas)
						turn++
					}
					start := time.Now()
					status, err := lab.post(ctx, lab.replicas[r], "/api/v1/nodes", body)
					if ctx.Err() != nil {
						return
					}
					if err == nil && status/100 == 2 {
						mu.Lock()
						out.acked[name] = mac
						im.at = append(im.at, time.Now())
						mu.Unlock()
						break
					}
					what := fmt.Sprintf("import %s via %s: %d %v", name, lab.replicas[r].id, status, err)
					mu.Lock()
					out.errors = append(out.errors, clientError{start: start, seen: time.Now(), what: what})
					mu.Unlock()
					if status != 0 {
						break // an answer (a 409 for an import whose first answer was lost): not sent again
					}
					down[r].Store(true)
				}
			}
		})
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	im.stop = func() haImports {
		cancel()
		wg.Wait()
		return *out
	}
	return im
}

func (lab *haLab) post(ctx context.Context, r *haReplica, path string, body []byte) (int, error) {
	return lab.request(ctx, r, http.MethodPost, path, body)
}

// request is an admin request with a JSON body to replica r: its status, and the body
// as the error when that is not 2xx.
func (lab *haLab) request(ctx context.Context, r *haReplica, method, path string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+r.addr+path, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+haAdminTok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := lab.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s", bytes.TrimSpace(msg))
	}
	return resp.StatusCode, nil
}
