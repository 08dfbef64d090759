package kubetest

import (
	"bytes"
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// RequestKey names one kind of request the API server served.
type RequestKey struct {
	Verb        string // POST, PUT, PATCH, DELETE, APPLY, GET, LIST, WATCH...
	Group       string // "" for the core group
	Resource    string
	Subresource string
}

// Requests counts the requests the API server has served since it started, by kind
// (its apiserver_request_total, every response code summed). The difference of two
// calls is what the code between them cost the API server: a test bounds an
// operation's writes with it instead of timing it.
func (api *API) Requests(t testing.TB) map[RequestKey]int {
	t.Helper()
	raw, err := api.Admin.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		t.Fatalf("read the API server's metrics: %v", err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parse the API server's metrics: %v", err)
	}
	out := map[RequestKey]int{}
	fam, ok := families["apiserver_request_total"]
	if !ok {
		return out
	}
	for _, m := range fam.GetMetric() {
		var k RequestKey
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "verb":
				k.Verb = l.GetValue()
			case "group":
				k.Group = l.GetValue()
			case "resource":
				k.Resource = l.GetValue()
			case "subresource":
				k.Subresource = l.GetValue()
			}
		}
		out[k] += int(m.GetCounter().GetValue())
	}
	return out
}

// IsWrite reports whether the request changes what the API server stores.
func (k RequestKey) IsWrite() bool {
	switch k.Verb {
	case "POST", "PUT", "PATCH", "DELETE", "DELETECOLLECTION", "APPLY":
		return true
	}
	return false
}

func (k RequestKey) String() string {
	s := k.Verb + " " + k.Resource
	if k.Group != "" {
		s += "." + k.Group
	}
	if k.Subresource != "" {
		s += "/" + k.Subresource
	}
	return s
}

// RequestsSince is after minus before, without the kinds that did not change.
func RequestsSince(before, after map[RequestKey]int) map[RequestKey]int {
	out := map[RequestKey]int{}
	for k, n := range after {
		if d := n - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// FormatRequests prints counts as "POST bootyardnodes.bootyard.io: 3, ..." in a stable order.
func FormatRequests(counts map[RequestKey]int) string {
	keys := make([]RequestKey, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b RequestKey) int { return strings.Compare(a.String(), b.String()) })
	var b bytes.Buffer
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k.String() + ": " + strconv.Itoa(counts[k]))
	}
	return b.String()
}
