// Package storetest is the store test suite every inventory backend must pass: the bbolt
// store runs it from store's tests, the Kubernetes backend from kubestore's, against a
// real kube-apiserver and etcd. It tests behaviour through store.Backend only.
package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// Opener opens an empty backend with the given limits (zero fields: the defaults) and
// closes it when t ends.
type Opener func(t *testing.T, limits store.Limits) store.Backend

// Run runs every test of the suite against backends made by open, each on a fresh one.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open Opener)
	}{
		{"Import_AnswersByNameAndMACAndRefusesATakenNameOrMAC", testImport},
		{"Update_WritesTheChangeAndItsEventsOrNothing", testUpdate},
		{"Update_ConcurrentTransitionsHaveExactlyOneWinner", testConcurrentTransition},
		{"Delete_RemovesAFreshNodeAndMarksAnInstalledOne", testDelete},
		{"Rename_CarriesTheHistoryAndSecrets", testRename},
		{"LaterFields_SurviveImportAndUpdate", testLaterFields},
		{"Query_PagesEveryMatchOnceInOrder", testQueryPaging},
		{"Query_FiltersAndCounts", testQueryFilters},
		{"Query_RefusesABadTokenOrSort", testQueryErrors},
		{"Query_FiltersOnTheInspectedHardware", testQueryHardware},
		{"Events_KeepTheNewestWithinTheBound", testEventBounds},
		{"Discovery_RecordsAnUnknownMACAndImportTakesItOver", testDiscovery},
		{"Discovery_ForgetsTheLongestUnseenPastTheCap", testDiscoveryCap},
		{"ImportNodes_AllOrNothingAndIdempotent", testImportNodes},
		{"Settings_RoundTripWithTheTokenAndRefuseInvalid", testSettings},
		{"Images_DefaultAndRefuseRemovingOneInUse", testImages},
		{"Leases_AnswerByIPAndMACAndOneRecordPerMAC", testLeases},
		{"Reservations_ListStaticAddresses", testReservations},
		{"Secrets_NodeSecretsAndAdminPassword", testSecrets},
		{"Bulk_EachNodeItsOwnResultAndQueriesAgree", testBulk},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open) })
	}
}

// MAC makes the i-th test MAC (locally administered, unicast).
func MAC(i int) node.MAC { return node.MAC{0x02, 0xb0, 0x07, byte(i >> 16), byte(i >> 8), byte(i)} }

func server(name string, macs ...node.MAC) node.Node {
	return node.Node{Name: name, MACs: macs, Role: node.RoleServer}
}

func worker(name string, macs ...node.MAC) node.Node {
	return node.Node{Name: name, MACs: macs, Role: node.RoleWorker}
}

func mustImport(t *testing.T, s store.Backend, spec node.Node) node.Node {
	t.Helper()
	n, err := s.ImportNode(context.Background(), spec, "test")
	if err != nil {
		t.Fatalf("import %s: %v", spec.Name, err)
	}
	return n
}

// Move walks a node through states with UpdateNode, one legal transition each.
func Move(t testing.TB, s store.Backend, name string, states ...node.State) node.Node {
	t.Helper()
	var n node.Node
	for _, to := range states {
		var err error
		n, err = s.UpdateNode(context.Background(), name, func(n *node.Node) ([]node.Event, error) {
			ev, err := n.Transition(to, "test moves it", "test", time.Now().UTC())
			return []node.Event{ev}, err
		})
		if err != nil {
			t.Fatalf("move %s to %s: %v", name, to, err)
		}
	}
	return n
}

// transitions lists a node's transition events as "from→to".
func transitions(t *testing.T, s store.Backend, name string) []string {
	t.Helper()
	events, err := s.Events(context.Background(), name, 0)
	if err != nil {
		t.Fatalf("events of %s: %v", name, err)
	}
	var out []string
	for _, e := range events {
		if e.Node != name {
			t.Errorf("an event of %s names node %q", name, e.Node)
		}
		if e.Type == node.EventTransition {
			out = append(out, string(e.From)+"→"+string(e.To))
		}
	}
	return out
}

func wantErr(t *testing.T, what string, err, kind error) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Errorf("%s: error %v, want %v", what, err, kind)
	}
}
