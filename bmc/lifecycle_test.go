package bmc

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/bootyard/bootyard/bmc/bmctest"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
	"github.com/bootyard/bootyard/store/storetest"
)

// TestLifecycle_ImportDeleteWipeAgainstOpenIPMISimulator drives a node's whole life
// through a real BMC (ipmi_sim): import → boot once from the network and power on;
// deletion without a cluster → boot once from the network and power cycle; wipe done →
// power off; every action an event of the node with its outcome.
func TestLifecycle_ImportDeleteWipeAgainstOpenIPMISimulator(t *testing.T) {
	sim := bmctest.StartIPMISim(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var life *Lifecycle
	var lifeMu sync.Mutex
	st, err := store.Open(filepath.Join(t.TempDir(), "bootyard.db"), store.Options{OnUpdate: func(before, after node.Node) {
		lifeMu.Lock()
		defer lifeMu.Unlock()
		if life != nil {
			life.Observe(before, after)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, dial := simTarget(sim, "")
	lifeMu.Lock()
	life = NewLifecycle(NewService(ServiceConfig{Env{Dial: dial}}, st))
	lifeMu.Unlock()
	done := make(chan error, 1)
	go func() { done <- life.Run(ctx) }()
	defer func() { cancel(); <-done }()

	spec := node.Node{Name: "w1", Role: node.RoleWorker, MACs: []node.MAC{{0x02, 0, 0, 0, 0x15, 0x01}},
		BMC: &node.BMC{Protocol: node.BMCIPMI, Address: sim.Addr, User: sim.User, PasswordSet: true}}
	if _, err := st.ImportNode(ctx, spec, "api"); err != nil {
		t.Fatal(err)
	}
	if err := st.SetNodeSecret(ctx, "w1", node.BMCPasswordKey, []byte(sim.Password)); err != nil {
		t.Fatal(err)
	}
	life.Imported("w1", "api")
	waitFor(t, "the imported machine to be powered on into a network boot", func() bool {
		return sim.File("power") == "1" && sim.File("boot") == "pxe"
	})
	if out, _ := sim.IPMITool("chassis", "bootparam", "get", "5"); !strings.Contains(out, "Force PXE") {
		t.Fatalf("boot flags after import, as ipmitool reads them:\n%s", out)
	}

	// It installs; the firmware consumed the one-time boot flag.
	storetest.Move(t, st, "w1", node.StateProvisioning, node.StateInstalled)
	sim.WriteFile(t, "boot", "default")
	logBefore := sim.File("chassis.log")

	n, removed, err := st.DeleteNode(ctx, "w1", node.DeleteOptions{Confirm: "w1"})
	if err != nil || removed || n.State != node.StateWiping {
		t.Fatalf("delete: %s removed=%v %v", n.State, removed, err)
	}
	waitFor(t, "the deleted machine to be cycled into a network boot", func() bool {
		after := strings.TrimPrefix(sim.File("chassis.log"), logBefore)
		return strings.Contains(after, "set boot pxe") && strings.Contains(after, "set power 0") && sim.File("power") == "1"
	})

	storetest.Move(t, st, "w1", node.StateDeleted)
	waitFor(t, "the wiped machine to be powered off", func() bool { return sim.File("power") == "0" })
	if out, _ := sim.IPMITool("chassis", "power", "status"); !strings.Contains(out, "is off") {
		t.Fatalf("ipmitool after the wipe: %s", out)
	}

	events, err := st.Events(ctx, "w1", 0)
	if err != nil {
		t.Fatal(err)
	}
	var power []string
	for _, e := range events {
		if e.Type == node.EventPower {
			power = append(power, e.Reason)
		}
	}
	want := []string{
		"boot once pxe, power on (imported: network boot to install): done",
		"boot once pxe, power cycle (deletion: network boot to wipe): done",
		"power off (wiped): done",
	}
	if strings.Join(power, "\n") != strings.Join(want, "\n") {
		t.Fatalf("power events:\n%s\nwant:\n%s", strings.Join(power, "\n"), strings.Join(want, "\n"))
	}
	for _, e := range events {
		if strings.Contains(e.Reason, sim.Password) {
			t.Fatalf("event carries the BMC password: %+v", e)
		}
	}
}

// recordingBMC records the calls made to it and fails with failWith when set.
type recordingBMC struct {
	mu       sync.Mutex
	calls    []string
	failWith error
}

func (r *recordingBMC) note(s string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, s)
	return r.failWith
}
func (r *recordingBMC) PowerStatus(context.Context) (PowerState, error) {
	return PowerOn, r.note("status")
}
func (r *recordingBMC) PowerOn(context.Context) error    { return r.note("on") }
func (r *recordingBMC) PowerOff(context.Context) error   { return r.note("off") }
func (r *recordingBMC) PowerCycle(context.Context) error { return r.note("cycle") }
func (r *recordingBMC) PowerReset(context.Context) error { return r.note("reset") }
func (r *recordingBMC) SetBootOnce(_ context.Context, d BootDevice) error {
	return r.note("boot " + string(d))
}

func (r *recordingBMC) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

func TestLifecycle_WhichTransitionsUseTheBMC(t *testing.T) {
	withBMC := bmcNode("n", "ipmi://10.0.0.1")
	keepOn := bmcNode("n", "ipmi://10.0.0.1")
	keepOn.BMC.KeepPowerOn = true
	at := func(n node.Node, s node.State) node.Node { n.State = s; return n }
	for _, tc := range []struct {
		name          string
		before, after node.Node
		want          string
	}{
		{"deleted without a cluster", at(withBMC, node.StateActive), at(withBMC, node.StateWiping), "boot pxe,cycle"},
		{"wiped again", at(withBMC, node.StateDeleted), at(withBMC, node.StateWiping), "boot pxe,cycle"},
		{"the cluster path reached wiping: it rebooted the machine", at(withBMC, node.StateDeleting), at(withBMC, node.StateWiping), ""},
		{"wipe done", at(withBMC, node.StateWiping), at(withBMC, node.StateDeleted), "off"},
		{"wipe done, told to stay on", at(keepOn, node.StateWiping), at(keepOn, node.StateDeleted), ""},
		{"no BMC", node.Node{Name: "n", State: node.StateActive}, node.Node{Name: "n", State: node.StateWiping}, ""},
		{"no state change", at(withBMC, node.StateWiping), at(withBMC, node.StateWiping), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recordingBMC{}
			inv := &memInventory{nodes: []node.Node{tc.after}}
			life := NewLifecycle(NewService(ServiceConfig{Env{NewController: func(Target, DialConfig) (Controller, error) { return rec, nil }}}, inv))
			life.Observe(tc.before, tc.after)
			// Work the queue once, synchronously: whatever Observe enqueued is in it now.
			for len(life.queue) > 0 {
				j := <-life.queue
				_, _ = life.svc.Do(context.Background(), j.name, j.req, j.source)
			}
			if got := strings.Join(rec.list(), ","); got != tc.want {
				t.Fatalf("BMC calls %q, want %q", got, tc.want)
			}
		})
	}
}

func TestService_BMCErrorsNeverCarryThePassword(t *testing.T) {
	const pw = "Echoed-pw-6620"
	rec := &recordingBMC{failWith: errors.New("login as admin with " + pw + " refused")}
	inv := &memInventory{nodes: []node.Node{bmcNode("n", "ipmi://10.0.0.1")}, secrets: map[string]string{"n": pw}}
	svc := NewService(ServiceConfig{Env{NewController: func(Target, DialConfig) (Controller, error) { return rec, nil }}}, inv)
	_, err := svc.Do(context.Background(), "n", Request{Action: ActionCycle, BootOnce: BootPXE}, "api")
	if !errors.Is(err, ErrBMCFailed) || strings.Contains(err.Error(), pw) || !strings.Contains(err.Error(), "[redacted]") {
		t.Fatalf("error %v", err)
	}
	r := inv.reasons("n")
	if len(r) != 1 || strings.Contains(r[0], pw) || !strings.HasPrefix(r[0], "power: boot once pxe, power cycle: failed: ") {
		t.Fatalf("events %q", r)
	}
	if _, err := svc.Do(context.Background(), "nobody", Request{Action: ActionOn}, "api"); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("unknown node: %v", err)
	}
	inv.nodes = append(inv.nodes, node.Node{Name: "bare"})
	if _, err := svc.Do(context.Background(), "bare", Request{Action: ActionOn}, "api"); !errors.Is(err, ErrNoBMC) {
		t.Fatalf("node without a BMC: %v", err)
	}
}
