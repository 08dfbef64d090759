package web

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestAPI_ImportTakesRootDiskHintsAndStoresThemCanonically(t *testing.T) {
	h := newAPI(t)
	n := h.mustImport(`{"macs":["52:54:00:00:00:01"],"role":"worker","name":"w-1","rootDiskHints":"SIZE >= 400,serial=S123"}`)
	if got := n.RootDiskHints.String(); got != "serial==s123,size>=400G" {
		t.Errorf("stored hints %q", got)
	}
	// The API's node object carries them in their text form.
	code, out := h.call("GET", "/api/v1/nodes/w-1", nil, true)
	var got struct {
		RootDiskHints string `json:"rootDiskHints"`
	}
	if code != http.StatusOK || json.Unmarshal(out, &got) != nil || got.RootDiskHints != "serial==s123,size>=400G" {
		t.Errorf("GET: %d %s", code, out)
	}

	for _, bad := range []string{"colour=red", "size>=lots", "rotational=maybe", "serial"} {
		code, out := h.call("POST", "/api/v1/nodes", `{"macs":["52:54:00:00:00:02"],"role":"worker","rootDiskHints":"`+bad+`"}`, true)
		var e struct {
			Field string `json:"field"`
		}
		json.Unmarshal(out, &e)
		if code != http.StatusUnprocessableEntity || e.Field != "rootDiskHints" {
			t.Errorf("hints %q: %d %s, want 422 naming rootDiskHints", bad, code, out)
		}
	}
}

func TestBulkImport_CSVTakesRootDiskHintsAndAgainChangesNothing(t *testing.T) {
	h := newAPI(t)
	csv := "mac,name,role,root_disk_hints\n52:54:00:07:00:01,r7-w1,worker,\"serial=S1,size>=400G\"\n52:54:00:07:00:02,r7-w2,worker,\n"
	code, rep := h.postCSV("", csv, true)
	if code != http.StatusOK || rep.Created != 2 {
		t.Fatalf("import: %d %+v", code, rep)
	}
	page := h.list("?limit=10")
	hints := map[string]string{}
	for _, n := range page.Nodes {
		hints[n.Name] = n.RootDiskHints.String()
	}
	if hints["r7-w1"] != "serial==s1,size>=400G" || hints["r7-w2"] != "" {
		t.Errorf("stored hints %v", hints)
	}
	if code, rep := h.postCSV("", csv, true); code != http.StatusOK || rep.Unchanged != 2 {
		t.Errorf("the same file again: %d %+v, want 2 unchanged", code, rep)
	}
	bad := "mac,role,root_disk_hints\n52:54:00:07:00:03,worker,size>=lots\n"
	if code, rep := h.postCSV("", bad, true); code/100 == 2 || len(rep.Errors) != 1 || !strings.Contains(rep.Errors[0].Error, "size") {
		t.Errorf("bad hints: %d %+v, want the row refused", code, rep)
	}
}
