package web

import (
	"bytes"
	"encoding/json"
	"net/url"
	"testing"
)

// TestListNodes_ItemsAreTheDetailDocumentsAndThePageIsWhatTheStoreAnswers: the list sends
// stored node documents as they are (no decode and encode per node), so each item must
// be byte for byte what GET /api/v1/nodes/{name} shows, and the page as a whole what
// encoding the store's decoded page gives.
func TestListNodes_ItemsAreTheDetailDocumentsAndThePageIsWhatTheStoreAnswers(t *testing.T) {
	h := newAPI(t)
	if code, rep := h.postCSV("", rackCSV, true); code != 200 || rep.Created != 4 {
		t.Fatalf("import: %d %+v", code, rep)
	}
	for _, query := range []string{"?limit=2", "?labelSelector=" + url.QueryEscape("rack=r7,!gpu"), "?sort=-state&limit=3", "?state=failed"} {
		code, body := h.call("GET", "/api/v1/nodes"+query, nil, true)
		if code != 200 {
			t.Fatalf("GET %s: %d %s", query, code, body)
		}
		var page struct {
			Items    []json.RawMessage `json:"items"`
			Continue string            `json:"continue"`
			Total    *int              `json:"total"`
		}
		if err := json.Unmarshal(body, &page); err != nil || page.Items == nil || page.Total == nil {
			t.Fatalf("GET %s: not a page: %v %s", query, err, body)
		}
		for _, item := range page.Items {
			var n struct{ Name string }
			if err := json.Unmarshal(item, &n); err != nil {
				t.Fatal(err)
			}
			code, detail := h.call("GET", "/api/v1/nodes/"+n.Name, nil, true)
			if code != 200 || !bytes.Equal(append(bytes.Clone(item), '\n'), detail) {
				t.Fatalf("item %s differs from its detail:\n%s\n%s", n.Name, item, detail)
			}
		}
		q, err := parseNodeQuery(mustQuery(t, query))
		if err != nil {
			t.Fatal(err)
		}
		want, err := h.st.QueryNodes(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		wantBody, _ := json.Marshal(want)
		if !bytes.Equal(bytes.TrimSpace(body), wantBody) {
			t.Fatalf("GET %s:\n%s\nwant\n%s", query, body, wantBody)
		}
	}
}

func mustQuery(t *testing.T, query string) url.Values {
	t.Helper()
	v, err := url.ParseQuery(query[1:])
	if err != nil {
		t.Fatal(err)
	}
	return v
}
