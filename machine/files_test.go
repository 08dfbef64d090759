package machine

import (
	"fmt"
	"net/http"
	"os"
	"testing"
)

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
