// Package agentapi is the wire contract between Bootyard's agent API (/agent/v1/) and the
// installer agent: defined once here, imported by the server, the agent and test fakes.
// It is a leaf: it imports nothing of Bootyard's.
package agentapi

// Action is what an agent boot is for.
type Action string

const (
	Install Action = "install" // write the node's image and its NoCloud data
	Wipe    Action = "wipe"    // wipe every disk, reinstall without join data
)

// Task is the agent's work order (GET /agent/v1/task).
type Task struct {
	Node   string `json:"node"`
	Action Action `json:"action"`
	// Disk is the install target; empty means the first non-removable disk.
	Disk string `json:"disk"`
	// Image is nil for a wipe of a node without an image: the disks stay empty.
	Image *Image `json:"image,omitempty"`
	// CIData are the NoCloud files for the CIDATA filesystem, by file name; []byte
	// marshals as base64. A wipe's have no join data.
	CIData map[string][]byte `json:"cidata"`
	Wipe   WipeOptions       `json:"wipe"`
}

// Image is where the agent downloads the image and how it checks it.
type Image struct {
	Name   string `json:"name"`
	URL    string `json:"url"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	// Format is raw, gzip or zstd (store.ImageFormat's values).
	Format string `json:"format"`
}

// WipeOptions tune the wipe.
type WipeOptions struct {
	Overwrite bool `json:"overwrite"` // overwrite whole disks, not only signatures
}

// Progress is one progress report (POST /agent/v1/progress).
type Progress struct {
	Phase   string `json:"phase"`
	Bytes   int64  `json:"bytes"`
	Total   int64  `json:"total"`
	Percent int    `json:"percent"`
	Message string `json:"message,omitempty"`
}

// Log is a batch of installer log lines (POST /agent/v1/log).
type Log struct {
	Lines []string `json:"lines"`
}

// Done reports the task finished (POST /agent/v1/done).
type Done struct {
	Action Action `json:"action"`
	// Wiped is a wipe's read-back of every disk it wiped, taken after the wipe and
	// before any reinstall; Bootyard records a node deleted only when every one is blank.
	Wiped []DiskCheck `json:"wiped,omitempty"`
}

// DiskCheck is the read-back of one wiped disk.
type DiskCheck struct {
	Disk string `json:"disk"`
	Size int64  `json:"size"`
	// Blank: no partition table, and nothing but zeros in the first and last MiB.
	Blank bool `json:"blank"`
	// Found says what is left when the disk is not blank.
	Found string `json:"found,omitempty"`
}

// Failed reports the task failed (POST /agent/v1/failed).
type Failed struct {
	Reason string `json:"reason"`
}

// Firmware is what the agent read from the machine's firmware (POST /agent/v1/firmware).
type Firmware struct {
	// UEFI: the kernel was started by UEFI firmware (/sys/firmware/efi exists).
	UEFI bool `json:"uefi"`
	// SecureBoot is the firmware's SecureBoot variable: the machine booted with Secure
	// Boot enforced. Always false without UEFI.
	SecureBoot bool `json:"secureBoot"`
}
