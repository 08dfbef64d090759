package store

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	"github.com/bootyard/bootyard/node"
)

// RecordFormatVersion is the version of the export format (Record, one JSON object per
// line) this build writes and reads. A reader refuses a header with another version: the
// format carries secrets and states, and guessing at an unknown layout could lose either.
// A later layout bumps this and keeps reading the old one.
const RecordFormatVersion = 1

// RecordFormatName is the header's format field: it tells an export from any other JSON.
const RecordFormatName = "bootyard-export"

// RecordKind says which part of the inventory a Record carries.
type RecordKind string

const (
	RecordHeader   RecordKind = "header"   // first line: format and version
	RecordSettings RecordKind = "settings" // join settings (token, install env) and the admin password hash
	RecordImage    RecordKind = "image"    // one image catalog entry
	RecordNode     RecordKind = "node"     // one node (registered or discovered) with its whole history
	RecordLease    RecordKind = "lease"    // one DHCP address record
)

// Record is one line of an export: the unit a backend imports all-or-nothing. Exactly the
// field its Kind names is set. The layout is a wire contract between backends (bbolt, the
// Kubernetes API) and versions of Bootyard: fields are added, never renamed.
type Record struct {
	Kind RecordKind `json:"kind"`
	// Format and Version are set on the header only.
	Format   string          `json:"format,omitempty"`
	Version  int             `json:"version,omitempty"`
	Settings *SettingsRecord `json:"settings,omitempty"`
	Image    *Image          `json:"image,omitempty"`
	Node     *node.Node      `json:"node,omitempty"`
	// Events are the node's history, oldest first, with their sequence numbers, so the
	// imported history continues from the same numbers.
	Events []node.Event `json:"events,omitempty"`
	Lease  *LeaseRecord `json:"lease,omitempty"`
	// Secrets are the node's secrets (the BMC password, see SetNodeSecret) in clear, by
	// key: they follow the node into the target store, never into its record there.
	// Optional, so version 1 files written before it still read.
	Secrets map[string][]byte `json:"secrets,omitempty"`
}

// Name identifies the record in reports: the node, image or address it carries.
func (r *Record) Name() string {
	switch {
	case r.Node != nil:
		return r.Node.Name
	case r.Image != nil:
		return r.Image.Name
	case r.Lease != nil:
		return r.Lease.IP.String()
	}
	return string(r.Kind)
}

// Validate checks a record read from a file before a backend writes any of it.
func (r *Record) Validate() error {
	set := 0
	for _, p := range []bool{r.Settings != nil, r.Image != nil, r.Node != nil, r.Lease != nil} {
		if p {
			set++
		}
	}
	want := 1
	if r.Kind == RecordHeader {
		want = 0
	}
	if set != want {
		return fmt.Errorf("%s record: %w: carries %d parts, want %d", r.Kind, node.ErrInvalid, set, want)
	}
	if len(r.Secrets) > 0 && r.Kind != RecordNode {
		return fmt.Errorf("%s record: %w: only a node record carries secrets", r.Kind, node.ErrInvalid)
	}
	switch r.Kind {
	case RecordHeader:
		if r.Format != RecordFormatName || r.Version != RecordFormatVersion {
			return fmt.Errorf("header: %w: format %q version %d, this build reads %s version %d",
				node.ErrInvalid, r.Format, r.Version, RecordFormatName, RecordFormatVersion)
		}
	case RecordSettings:
		if r.Settings == nil {
			return fmt.Errorf("settings record: %w: no settings", node.ErrInvalid)
		}
		if _, err := r.Settings.ClusterSettings(); err != nil {
			return err
		}
	case RecordImage:
		if r.Image == nil {
			return fmt.Errorf("image record: %w: no image", node.ErrInvalid)
		}
		return r.Image.Validate()
	case RecordNode:
		if r.Node == nil {
			return fmt.Errorf("node record: %w: no node", node.ErrInvalid)
		}
		if err := r.Node.Validate(); err != nil {
			return err
		}
		var last uint64
		for _, e := range r.Events {
			if e.Node != r.Node.Name || e.Seq <= last {
				return fmt.Errorf("node %s: %w: event %d is out of order or another node's (%q)", r.Node.Name, node.ErrInvalid, e.Seq, e.Node)
			}
			last = e.Seq
		}
		for k, v := range r.Secrets {
			if k == "" || len(v) == 0 {
				return fmt.Errorf("node %s: %w: a secret with an empty key or value (%q)", r.Node.Name, node.ErrInvalid, k)
			}
		}
	case RecordLease:
		if r.Lease == nil || !r.Lease.IP.IsValid() {
			return fmt.Errorf("lease record: %w: no address", node.ErrInvalid)
		}
		if _, err := parseLeaseState(r.Lease.State); err != nil {
			return err
		}
	default:
		return fmt.Errorf("record: %w: unknown kind %q", node.ErrInvalid, r.Kind)
	}
	return nil
}

// SettingsRecord carries the settings with their secrets in clear: the join token and
// the install environment inside Cluster, and the admin password's bcrypt hash.
type SettingsRecord struct {
	// Cluster is node.ClusterSettings in the stored form, whose token is a plain string
	// (node.Secret refuses to marshal its value). ClusterSettings decodes it.
	Cluster           json.RawMessage `json:"cluster,omitempty"`
	AdminPasswordHash string          `json:"adminPasswordHash,omitempty"`
}

// NewSettingsRecord builds the record of c and the admin password hash.
func NewSettingsRecord(c node.ClusterSettings, adminPasswordHash []byte) (*SettingsRecord, error) {
	v, err := json.Marshal(clusterRecord{ClusterSettings: c, Token: c.Token.Reveal()})
	if err != nil {
		return nil, fmt.Errorf("encode cluster settings: %w", err)
	}
	return &SettingsRecord{Cluster: v, AdminPasswordHash: string(adminPasswordHash)}, nil
}

// ClusterSettings decodes Cluster, token included (zero settings when absent).
func (r *SettingsRecord) ClusterSettings() (node.ClusterSettings, error) {
	if len(r.Cluster) == 0 {
		return node.ClusterSettings{}, nil
	}
	var rec clusterRecord
	if err := json.Unmarshal(r.Cluster, &rec); err != nil {
		return node.ClusterSettings{}, fmt.Errorf("settings record: %w: %v", node.ErrInvalid, err)
	}
	c := rec.ClusterSettings
	c.Token = node.Secret(rec.Token)
	return c, nil
}

// LeaseRecord is Lease in the export's JSON form.
type LeaseRecord struct {
	IP       netip.Addr `json:"ip"`
	MAC      node.MAC   `json:"mac,omitzero"`
	State    string     `json:"state"` // active, released, declined
	Expires  time.Time  `json:"expires,omitzero"`
	Hostname string     `json:"hostname,omitempty"`
}

// NewLeaseRecord is l's record.
func NewLeaseRecord(l Lease) *LeaseRecord {
	return &LeaseRecord{IP: l.IP, MAC: l.MAC, State: l.State.String(), Expires: l.Expires, Hostname: l.Hostname}
}

// Lease is the record as a Lease (the record must have passed Validate).
func (r *LeaseRecord) Lease() Lease {
	st, _ := parseLeaseState(r.State)
	return Lease{IP: r.IP, MAC: r.MAC, State: st, Expires: r.Expires, Hostname: r.Hostname}
}

func parseLeaseState(s string) (LeaseState, error) {
	for _, st := range []LeaseState{LeaseActive, LeaseReleased, LeaseDeclined} {
		if st.String() == s {
			return st, nil
		}
	}
	return 0, fmt.Errorf("lease record: %w: state %q must be active, released or declined", node.ErrInvalid, s)
}
