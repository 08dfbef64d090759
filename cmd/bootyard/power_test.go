package main

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/bmc"
	"github.com/bootyard/bootyard/bmc/bmctest"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
	"github.com/bootyard/bootyard/web"
)

// TestNodePower_CLIThroughARealBMC drives OpenIPMI's ipmi_sim with the CLI, through the
// API server and the power lifecycle, as `bootyard serve` wires them: import with a BMC
// (it powers on into a network boot), show, status, off, cycle with a boot device, and a
// wrong password, with the password in no output and no log line.
func TestNodePower_CLIThroughARealBMC(t *testing.T) {
	sim := bmctest.StartIPMISim(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	hooks := &updateHooks{}
	st, err := store.Open(filepath.Join(t.TempDir(), "bootyard.db"), store.Options{Logger: log, OnUpdate: hooks.run})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	life := bmc.NewLifecycle(bmc.NewService(bmc.ServiceConfig{Env: bmc.Env{Logger: log, Dial: bmc.DialConfig{Timeout: 15 * time.Second, IPMIDo: sim.NS.Do}}}, st))
	hooks.add(life.Observe)
	done := make(chan error, 1)
	go func() { done <- life.Run(ctx) }()
	defer func() { cancel(); <-done }()
	const token = "cli-power-test-token-0123456789"
	srv, err := web.New(web.Config{AdminToken: token, Logger: log}, web.Deps{Inventory: st, Power: life})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	var outputs []string
	cli := func(args ...string) (string, error) {
		var out bytes.Buffer
		root := newRootCommand(&out, &out)
		root.SetArgs(append([]string{"--server", ts.URL, "--admin-token", token, "--data-dir", t.TempDir()}, args...))
		err := root.ExecuteContext(context.Background())
		outputs = append(outputs, out.String())
		return out.String(), err
	}
	must := func(want string, args ...string) string {
		t.Helper()
		out, err := cli(args...)
		if err != nil || !strings.Contains(out, want) {
			t.Fatalf("bootyard %s: %q, %v; want %q", strings.Join(args, " "), out, err, want)
		}
		return out
	}
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte(sim.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	must("imported w1", "node", "import", "02:00:00:00:15:31", "--role", "worker", "--name", "w1",
		"--bmc", "ipmi://"+sim.Addr, "--bmc-user", sim.User, "--bmc-password-file", pwFile)
	bmctest.WaitFor(t, "the imported machine to power on into a network boot", func() bool {
		return sim.File("power") == "1" && sim.File("boot") == "pxe"
	})
	must("ipmi://"+sim.Addr+" user admin, password set", "node", "show", "w1")
	must("w1: power on", "node", "power", "w1", "status")
	must("w1: power off: done", "node", "power", "w1", "off")
	if sim.File("power") != "0" {
		t.Fatalf("chassis power %q after off", sim.File("power"))
	}
	must("w1: boot once disk, power cycle: done", "node", "power", "w1", "cycle", "--boot-once", "disk")
	if sim.File("power") != "1" || sim.File("boot") != "default" {
		t.Fatalf("chassis after cycle --boot-once disk: power %q boot %q", sim.File("power"), sim.File("boot"))
	}
	if out, err := cli("node", "power", "w1", "explode"); err == nil {
		t.Fatalf("an unknown action was accepted: %s", out)
	}

	// A wrong password: the BMC refuses, the CLI says so, nobody sees either password.
	wrong := filepath.Join(t.TempDir(), "wrong")
	if err := os.WriteFile(wrong, []byte("Wrong-cli-pw-3141"), 0o600); err != nil {
		t.Fatal(err)
	}
	must("password set", "node", "bmc", "w1", "--bmc-password-file", wrong)
	if out, err := cli("node", "power", "w1", "on"); err == nil || !strings.Contains(err.Error(), "BMC request failed") {
		t.Fatalf("power on with a wrong password: %q, %v", out, err)
	} else {
		outputs = append(outputs, err.Error())
	}
	events := must("power", "node", "show", "w1")
	for _, want := range []string{"boot once pxe, power on (imported: network boot to install): done", "power off: done", "power on: failed"} {
		if !strings.Contains(events, want) {
			t.Errorf("node show lacks the event %q:\n%s", want, events)
		}
	}
	for _, text := range append(outputs, logs.String()) {
		for _, pw := range []string{sim.Password, "Wrong-cli-pw-3141"} {
			if strings.Contains(text, pw) {
				t.Fatalf("the password %q shows:\n%s", pw, text)
			}
		}
	}
	if b, err := st.NodeSecret(ctx, "w1", node.BMCPasswordKey); err != nil || string(b) != "Wrong-cli-pw-3141" {
		t.Fatalf("stored password %q, %v", b, err)
	}
}
