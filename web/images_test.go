package web

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bootyard/bootyard/images"
	"github.com/bootyard/bootyard/store"
)

// imagesHarness is the operator server with a real image catalog holding "debian", the
// cluster default.
type imagesHarness struct{ *apiHarness }

func newImagesHarness(t *testing.T) imagesHarness {
	t.Helper()
	h := newAPI(t, func(st *store.Store, d *Deps) {
		catalog, err := images.NewCatalog(images.CatalogConfig{Store: st, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		img := filepath.Join(t.TempDir(), "debian.raw")
		if err := os.WriteFile(img, []byte("debian disk"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := catalog.Add(context.Background(), images.Spec{Name: "debian", File: img, Default: true}); err != nil {
			t.Fatal(err)
		}
		d.Images = catalog
	})
	return imagesHarness{h}
}

// do calls the API, with the admin token when token is it.
func (h imagesHarness) do(method, path, token, body string) (int, []byte) {
	h.t.Helper()
	return h.call(method, path, body, token == testToken)
}

func (h imagesHarness) admin(method, path, body string) (int, []byte) {
	return h.do(method, path, testToken, body)
}

func TestImagesAPI_AddListShowRemove(t *testing.T) {
	h := newImagesHarness(t) // has "debian", the default
	file := filepath.Join(t.TempDir(), "ubuntu.img")
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
		{"list without the admin token", "GET", "/api/v1/images", "", false, 200, `"name":"ubuntu"`},
		{"show", "GET", "/api/v1/images/debian", "", false, 200, `"default":false`},
		{"show unknown", "GET", "/api/v1/images/fedora", "", false, 404, "not found"},
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
	h := newImagesHarness(t)
	h.mustImport(`{"macs":["52:54:00:a0:00:01"],"role":"worker","name":"w-1"}`) // uses debian through the default
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
	h := newImagesHarness(t)
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
