package node

import "time"

// EventType says what an event records.
type EventType string

const (
	EventTransition EventType = "transition" // state change (From → To)
	EventBoot       EventType = "boot"       // DHCP, TFTP or iPXE script served
	EventCloudInit  EventType = "cloud-init" // NoCloud data served, refused or phoned home
	EventProgress   EventType = "progress"   // installer or wipe progress
	EventLog        EventType = "log"        // a line from the installer agent
	EventCluster    EventType = "cluster"    // drain, delete, fence, Ready changes
	EventWarning    EventType = "warning"    // something an operator should look at
	EventPower      EventType = "power"      // a BMC power or boot-device action and its outcome
)

// Event is one line of a node's history. Reasons never contain secrets.
type Event struct {
	Seq     uint64    `json:"seq,omitempty"`
	Time    time.Time `json:"time"`
	Node    string    `json:"node"`
	Type    EventType `json:"type"`
	From    State     `json:"from,omitempty"`
	To      State     `json:"to,omitempty"`
	Reason  string    `json:"reason"`
	Source  string    `json:"source,omitempty"` // api, cli, dhcp, ipxe, nocloud, agent, cluster
	Percent int       `json:"percent,omitempty"`
	Bytes   int64     `json:"bytes,omitempty"`
}

// NewEvent builds a non-transition event.
func NewEvent(nodeName string, t EventType, reason, source string, at time.Time) Event {
	return Event{Time: at, Node: nodeName, Type: t, Reason: reason, Source: source}
}
