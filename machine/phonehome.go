package machine

import (
	"strings"
	"time"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// The first-boot script's reports, in the order a join sends them.
const (
	phoneInstalled = "installed" // first boot done, nothing to join (or a script from before joining existed)
	phoneJoining   = "joining"   // the distribution's installer ran; its join is under way
	phoneJoined    = "joined"    // the distribution says the join finished (LLMOS: bootstrapped)
	phoneFailed    = "failed"    // the wait, the installer or the join failed; a log tail may follow
)

// maxJoinLogLines and maxJoinLogLineLen bound the join unit's journal tail a failed
// report carries: enough to see why, too little to fill the event log.
const (
	maxJoinLogLines   = 20
	maxJoinLogLineLen = 300
)

// phoneHomeUpdate is the node change one report makes, all in one store transaction.
// Whatever the report, a node that has moved on (active, deleting, ...) only gets the
// event: a late or repeated report never moves a node backwards.
func phoneHomeUpdate(status, reason string, logTail []string, now time.Time) store.UpdateFunc {
	return func(cur *node.Node) ([]node.Event, error) {
		var events []node.Event
		step := func(to node.State, why string) error {
			ev, err := cur.Transition(to, why, "nocloud", now)
			if err == nil {
				events = append(events, ev)
			}
			return err
		}
		// reachInstalled walks a node that has not reported installed yet up to it.
		reachInstalled := func() error {
			if cur.State == node.StateRegistered {
				// A VM from a template never network-booted the installer, so it skipped
				// provisioning. Step through it, but keep the generation: the machine has
				// just run cloud-init with this generation's instance-id, and a new one
				// would make it run the first boot again on its next reboot.
				gen := cur.Generation
				if err := step(node.StateProvisioning, "first boot from a cloud-init seed"); err != nil {
					return err
				}
				cur.Generation = gen
			}
			if cur.State == node.StateProvisioning {
				return step(node.StateInstalled, "cloud-init ran on the installed OS")
			}
			return nil
		}
		switch status {
		case phoneInstalled:
			events = append(events, node.NewEvent(cur.Name, node.EventCloudInit, "phone-home: cloud-init finished: "+reason, "nocloud", now))
			if err := reachInstalled(); err != nil {
				return nil, err
			}
		case phoneJoining:
			events = append(events, node.NewEvent(cur.Name, node.EventCloudInit, "phone-home: joining: "+reason, "nocloud", now))
			if err := reachInstalled(); err != nil {
				return nil, err
			}
			// failed → joining: an operator reran the first-boot script on the machine.
			if cur.State == node.StateInstalled || cur.State == node.StateFailed {
				if err := step(node.StateJoining, "the installer ran; the join is under way"); err != nil {
					return nil, err
				}
			}
		case phoneJoined:
			events = append(events, node.NewEvent(cur.Name, node.EventCloudInit, "phone-home: joined: "+reason, "nocloud", now))
			if err := reachInstalled(); err != nil {
				return nil, err
			}
			if cur.State == node.StateInstalled || cur.State == node.StateJoining {
				// Without a kubeconfig this is where the node stays; with one, its Node
				// turning Ready makes it active.
				if err := step(node.StateJoined, "the join finished: "+reason); err != nil {
					return nil, err
				}
			}
		case phoneFailed:
			events = append(events, node.NewEvent(cur.Name, node.EventWarning, "phone-home: first boot failed: "+reason, "nocloud", now))
			for _, l := range logTail {
				events = append(events, node.NewEvent(cur.Name, node.EventLog, l, "join", now))
			}
			switch cur.State {
			case node.StateRegistered, node.StateProvisioning, node.StateInstalled, node.StateJoining:
				if err := step(node.StateFailed, "first boot failed: "+reason); err != nil {
					return nil, err
				}
			}
		}
		return events, nil
	}
}

// cleanLogTail turns the join unit's journal tail into at most maxJoinLogLines printable
// lines (the last ones), each cut to maxJoinLogLineLen, with the token removed: the unit
// may well have logged its own config.
func cleanLogTail(s string, token node.Secret) []string {
	if token.IsSet() {
		s = strings.ReplaceAll(s, token.Reveal(), "[redacted]")
	}
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		lines = append(lines, cleanLine(l, maxJoinLogLineLen))
	}
	if len(lines) > maxJoinLogLines {
		lines = lines[len(lines)-maxJoinLogLines:]
	}
	return lines
}

// cleanLine keeps s to one line of printable characters, at most max runes long.
func cleanLine(s string, max int) string {
	s = printable(s)
	if r := []rune(s); len(r) > max {
		s = string(r[:max]) + "…"
	}
	return s
}
