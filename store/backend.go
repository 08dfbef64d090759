package store

import (
	"context"
	"net/netip"

	"github.com/bootyard/bootyard/node"
)

// Backend is the inventory as `bootyard serve` uses it: the method set both the bbolt
// Store and the Kubernetes backend (kubestore) implement, so cmd/bootyard can hold either
// and store/storetest can run one suite against both. Services still declare their own
// smaller interfaces; this one exists for the wiring and the shared suite.
type Backend interface {
	ImportNode(ctx context.Context, spec node.Node, source string) (node.Node, error)
	ImportNodes(ctx context.Context, rows []ImportRow, opts ImportOptions) ([]ImportResult, error)
	GetNode(ctx context.Context, ref string) (node.Node, error)
	NodeByMAC(ctx context.Context, mac node.MAC) (node.Node, error)
	ListNodes(ctx context.Context) ([]node.Node, error)
	UpdateNode(ctx context.Context, name string, fn UpdateFunc) (node.Node, error)
	RemoveNode(ctx context.Context, name string) error
	DeleteNode(ctx context.Context, name string, opts node.DeleteOptions) (node.Node, bool, error)
	QuorumNodes(ctx context.Context) ([]node.Node, error)
	QueryNodes(ctx context.Context, q NodeQuery) (NodePage, error)
	QueryNodesJSON(ctx context.Context, q NodeQuery) (RawNodePage, error)
	QueryNodeNames(ctx context.Context, q NodeQuery) (NamePage, error)
	UpdateNodes(ctx context.Context, names []string, fn UpdateFunc) ([]BulkResult, error)
	DeleteNodes(ctx context.Context, names []string, opts node.DeleteOptions) ([]BulkResult, error)
	StateCounts(ctx context.Context) (map[node.State]int, error)
	CountNodes(ctx context.Context) (map[node.State]int, error)
	NewNodeCache() VersionedNodes

	RecordBoot(ctx context.Context, mac node.MAC, seen node.BootInfo) error
	AppendEvents(ctx context.Context, events ...node.Event) error
	AppendMACEvents(ctx context.Context, events ...MACEvent) (dropped int, err error)
	Events(ctx context.Context, name string, limit int) ([]node.Event, error)

	AddImage(ctx context.Context, img Image, makeDefault bool) (Image, error)
	Image(ctx context.Context, name string) (Image, error)
	Images(ctx context.Context) ([]Image, error)
	RemoveImage(ctx context.Context, name string) error

	ClusterSettings(ctx context.Context) (node.ClusterSettings, error)
	UpdateClusterSettings(ctx context.Context, fn func(*node.ClusterSettings) error) (node.ClusterSettings, error)
	AdminPasswordHash(ctx context.Context) ([]byte, error)
	SetAdminPasswordHash(ctx context.Context, hash []byte) error

	PutLeases(ctx context.Context, leases ...Lease) error
	DeleteLeases(ctx context.Context, ips ...netip.Addr) error
	Leases(ctx context.Context) ([]Lease, error)
	MACForIP(ctx context.Context, ip netip.Addr) (node.MAC, error)
	LeaseForMAC(ctx context.Context, mac node.MAC) (Lease, error)
	Reservations(ctx context.Context) ([]Reservation, error)

	NodeSecrets

	BoundStats() BoundStats
	// Ready reports whether the backend answers from a complete view (serve's /readyz).
	Ready() bool
	Close() error
}

// NodeSecrets keeps per-node secret values (BMC passwords, ...) out of the node record:
// the Kubernetes backend keeps them in one Secret per node.
type NodeSecrets interface {
	SetNodeSecret(ctx context.Context, nodeName, key string, value []byte) error
	NodeSecret(ctx context.Context, nodeName, key string) ([]byte, error)
}

// VersionedNodes reads nodes by MAC with a version number that changes whenever the
// stored node does, so the boot hot path can keep what it rendered for a version.
type VersionedNodes interface {
	NodeByMAC(ctx context.Context, mac node.MAC) (node.Node, uint64, error)
}

var _ Backend = (*Store)(nil)
