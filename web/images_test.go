package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func (h *agentHarness) admin(method, path, body string) (int, []byte) {
	return h.do(method, path, testToken, body)
}

func TestImagesAPI_AddListShowRemove(t *testing.T) {
	h := newAgentHarness(t) // has "debian", the default
	file := filepath.Join(h.catalog.Dir(), "ubuntu.img")
	if err := os.WriteFile(file, []byte("ubuntu disk"), 0o644); err != nil {
		t.Fatal(err)
	}
	wrong := strings.Repeat("0", 64)
	tests := []struct {
		name     string
		method   string
		path     string
		body     string
		admin    bool
		wantCode int
		wantBody string
	}{
		{"add needs the admin token", "POST", "/api/v1/images", fmt.Sprintf(`{"name":"ubuntu","file":%q}`, file), false, 401, "admin token"},
		{"add with a wrong checksum", "POST", "/api/v1/images", fmt.Sprintf(`{"name":"ubuntu","file":%q,"sha256":%q}`, file, wrong), true, 422, "sha256 mismatch"},
		{"add a url without a checksum", "POST", "/api/v1/images", `{"name":"remote","url":"http://mirror/x.raw"}`, true, 422, "does not download"},
		{"add with an unknown field", "POST", "/api/v1/images", `{"name":"x","path":"/x"}`, true, 400, "unknown field"},
		{"add a file", "POST", "/api/v1/images", fmt.Sprintf(`{"name":"ubuntu","file":%q,"default":true}`, file), true, 201, `"default":true`},
		{"add the same name again", "POST", "/api/v1/images", fmt.Sprintf(`{"name":"ubuntu","file":%q}`, file), true, 409, "already exists"},
		{"list needs the admin token", "GET", "/api/v1/images", "", false, 401, "admin token"},
		{"list", "GET", "/api/v1/images", "", true, 200, `"name":"ubuntu"`},
		{"show", "GET", "/api/v1/images/debian", "", true, 200, `"default":false`},
		{"show unknown", "GET", "/api/v1/images/fedora", "", true, 404, "not found"},
		{"remove needs the admin token", "DELETE", "/api/v1/images/debian", "", false, 401, "admin token"},
		{"remove unused", "DELETE", "/api/v1/images/debian", "", true, 200, `"removed":true`},
		{"remove unknown", "DELETE", "/api/v1/images/debian", "", true, 404, "not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := ""
			if tt.admin {
				tok = testToken
			}
			code, body := h.do(tt.method, tt.path, tok, tt.body)
			if code != tt.wantCode || !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("%s %s: %d %s; want %d containing %q", tt.method, tt.path, code, body, tt.wantCode, tt.wantBody)
			}
		})
	}
	code, body := h.admin("GET", "/api/v1/cluster", "")
	if code != 200 || !strings.Contains(string(body), `"defaultImage":"ubuntu"`) {
		t.Errorf("cluster after add --default: %d %s", code, body)
	}
}

func TestImagesAPI_RemoveRefusesWhileNodesUseItAndListsThem(t *testing.T) {
	h := newAgentHarness(t)
	h.provisioning("w-1", agentMAC(1)) // uses debian through the default
	code, body := h.admin("DELETE", "/api/v1/images/debian", "")
	var out struct {
		Error string   `json:"error"`
		Nodes []string `json:"nodes"`
	}
	_ = json.Unmarshal(body, &out)
	if code != http.StatusConflict || len(out.Nodes) != 1 || out.Nodes[0] != "w-1" || !strings.Contains(out.Error, "w-1") {
		t.Errorf("remove in-use image: %d %s; want 409 naming w-1", code, body)
	}
}

func TestImagesAPI_NodeImportChecksTheImageName(t *testing.T) {
	h := newAgentHarness(t)
	tests := []struct {
		name      string
		body      string
		wantCode  int
		wantField string
	}{
		{"unknown image", `{"macs":["52:54:00:00:01:01"],"role":"worker","image":"fedora"}`, 422, "image"},
		{"catalog image", `{"macs":["52:54:00:00:01:02"],"role":"worker","image":"debian"}`, 201, ""},
		{"empty means the default", `{"macs":["52:54:00:00:01:03"],"role":"worker","image":""}`, 201, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := h.admin("POST", "/api/v1/nodes", tt.body)
			var e apiError
			_ = json.Unmarshal(body, &e)
			if code != tt.wantCode || e.Field != tt.wantField {
				t.Errorf("import: %d %s; want %d on field %q", code, body, tt.wantCode, tt.wantField)
			}
		})
	}
	code, body := h.admin("PATCH", "/api/v1/nodes/node-525400000102", `{"image":"fedora"}`)
	if code != 422 || !strings.Contains(string(body), `"field":"image"`) {
		t.Errorf("patch to an unknown image: %d %s; want 422 on field image", code, body)
	}
}

func TestImageFiles_ServedThroughEchoWithRangesAndTheChecksumAsETag(t *testing.T) {
	h := newAgentHarness(t)
	want, err := os.ReadFile(h.image.File)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", h.srv.URL+"/images/debian", nil)
	req.Header.Set("Range", "bytes=4-11")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := make([]byte, 64)
	n, _ := resp.Body.Read(got)
	if resp.StatusCode != http.StatusPartialContent || string(got[:n]) != string(want[4:12]) ||
		resp.Header.Get("ETag") != `"`+h.image.SHA256+`"` || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 4-11/%d", len(want)) {
		t.Errorf("range: %d %q ETag %q Content-Range %q", resp.StatusCode, got[:n], resp.Header.Get("ETag"), resp.Header.Get("Content-Range"))
	}
}
