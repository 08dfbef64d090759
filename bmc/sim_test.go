package bmc

import (
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
