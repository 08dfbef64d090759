package bmc

import (
	"context"
	"testing"
	"time"

	"github.com/bootyard/bootyard/bmc/bmctest"
	"github.com/bootyard/bootyard/node"
)

// simTarget is how Bootyard reaches the simulator, with a dialer that opens its sockets
// inside the simulator's namespace.
func simTarget(sim *bmctest.IPMISim, password string) (Target, DialConfig) {
	return Target{BMC: node.BMC{Protocol: node.BMCIPMI, Address: sim.Addr, User: sim.User}, Password: node.Secret(password)},
		DialConfig{Timeout: 15 * time.Second, IPMIDo: sim.NS.Do}
}

func waitFor(t testing.TB, what string, cond func() bool) { t.Helper(); bmctest.WaitFor(t, what, cond) }

// simClient is Bootyard's client for the simulator, and a check of the power state it reads.
func simClient(t *testing.T, sim *bmctest.IPMISim) (Controller, func(want PowerState)) {
	t.Helper()
	c, err := New(simTarget(sim, sim.Password))
	if err != nil {
		t.Fatal(err)
	}
	return c, func(want PowerState) {
		t.Helper()
		if got, err := c.PowerStatus(context.Background()); err != nil || got != want {
			t.Fatalf("PowerStatus = %s, %v; want %s", got, err, want)
		}
	}
}
