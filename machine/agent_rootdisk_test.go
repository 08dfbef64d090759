package machine

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/bootyard/bootyard/agentapi"
	"github.com/bootyard/bootyard/node"
)

func TestAgentAPI_TaskCarriesTheNodesRootDiskHintsElseTheImagesDefault(t *testing.T) {
	h := newAgentHarness(t)
	hinted := h.image
	hinted.Name = "hinted"
	hinted.Default = false
	var err error
	if hinted.RootDiskHints, err = node.ParseRootDiskHints("size>=400G,rotational=false"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.st.AddImage(context.Background(), hinted, false); err != nil {
		t.Fatal(err)
	}
	own, err := node.ParseRootDiskHints("serial=S123")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		n         node.Node
		wantHints string
		wantEvent string
	}{
		{"the node's own hints", node.Node{Image: "hinted", RootDiskHints: own}, "serial==s123", "disk chosen by root-disk hints serial==s123"},
		{"the image's default", node.Node{Image: "hinted"}, "rotational==false,size>=400G", "disk chosen by root-disk hints rotational==false,size>=400G"},
		{"neither", node.Node{}, "", "disk the smallest non-removable disk that fits"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := tt.n
			n.Name = "w-" + string(rune('1'+i))
			n.MACs = []node.MAC{agentMAC(byte(10 + i))}
			n.Role = node.RoleWorker
			h.importSeen(n)
			h.transition(n.Name, node.StateProvisioning)
			code, body := h.do("GET", "/agent/v1/task", h.boot(n.Name), "")
			if code != 200 {
				t.Fatalf("task: %d %s", code, body)
			}
			var task agentapi.Task
			if err := json.Unmarshal(body, &task); err != nil {
				t.Fatal(err)
			}
			if task.RootDiskHints != tt.wantHints || task.Disk != "" {
				t.Errorf("task hints %q disk %q, want hints %q and no disk", task.RootDiskHints, task.Disk, tt.wantHints)
			}
			logs := h.events(n.Name, node.EventLog)
			if len(logs) == 0 || !strings.Contains(logs[len(logs)-1].Reason, tt.wantEvent) {
				t.Errorf("agent-start event %+v does not say %q", logs, tt.wantEvent)
			}
		})
	}
}
