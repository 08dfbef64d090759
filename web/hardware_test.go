package web

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/bootyard/bootyard/agentapi"
	"github.com/bootyard/bootyard/node"
)

func TestAPI_InspectRequestsAnInspectionAndAdoptTakesTheInspectedBMC(t *testing.T) {
	h := newAPI(t)
	h.mustImport(`{"macs":["52:54:00:00:00:01"],"role":"worker","name":"w-1"}`)

	if code, _ := h.call("POST", "/api/v1/nodes/w-1/inspect", nil, false); code != http.StatusUnauthorized {
		t.Errorf("inspect without the admin token: %d", code)
	}
	code, out := h.call("POST", "/api/v1/nodes/w-1/inspect", `{"after":"sometimes"}`, true)
	var e struct {
		Field string `json:"field"`
	}
	json.Unmarshal(out, &e)
	if code != http.StatusUnprocessableEntity || e.Field != "after" {
		t.Errorf("bad after: %d %s", code, out)
	}
	code, out = h.call("POST", "/api/v1/nodes/w-1/inspect", nil, true)
	var n node.Node
	if code != http.StatusAccepted || json.Unmarshal(out, &n) != nil || n.Inspect == nil || n.Inspect.After != agentapi.PowerOffAfterInspect {
		t.Fatalf("inspect: %d %s", code, out)
	}
	if code, out := h.call("POST", "/api/v1/nodes/w-1/inspect", `{"after":"wait"}`, true); code != http.StatusAccepted || json.Unmarshal(out, &n) != nil || n.Inspect.After != agentapi.WaitAfterInspect {
		t.Errorf("inspect after wait: %d %s", code, out)
	}

	// No inspection yet: nothing to adopt.
	if code, out := h.call("POST", "/api/v1/nodes/w-1/bmc/adopt", nil, true); code != http.StatusConflict {
		t.Errorf("adopt without an inspection: %d %s, want 409", code, out)
	}
	if _, err := h.st.UpdateNode(context.Background(), "w-1", func(n *node.Node) ([]node.Event, error) {
		n.Hardware = &node.Hardware{InspectedAt: time.Now().UTC(), Inventory: agentapi.Inventory{BMC: &agentapi.BMC{Address: "10.9.0.7", Channel: 1}}}
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	code, out = h.call("POST", "/api/v1/nodes/w-1/bmc/adopt", nil, true)
	if code != http.StatusOK || json.Unmarshal(out, &n) != nil || n.BMC == nil || n.BMC.Address != "10.9.0.7" || n.BMC.Protocol != node.BMCIPMI {
		t.Errorf("adopt: %d %s", code, out)
	}

	// A node whose disks an agent is writing is not inspected.
	if _, err := h.st.UpdateNode(context.Background(), "w-1", func(n *node.Node) ([]node.Event, error) {
		ev, err := n.Transition(node.StateProvisioning, "test", "test", time.Now().UTC())
		return []node.Event{ev}, err
	}); err != nil {
		t.Fatal(err)
	}
	if code, out := h.call("POST", "/api/v1/nodes/w-1/inspect", nil, true); code/100 != 4 {
		t.Errorf("inspect while provisioning: %d %s, want a 4xx", code, out)
	}
}
