// Package agentapi is the wire contract between Bootyard's agent API (/agent/v1/) and the
// installer agent: defined once here, imported by the server, the agent and test fakes.
// It is a leaf: it imports nothing of Bootyard's.
package agentapi

// Action is what an agent boot is for.
type Action string

const (
	Install Action = "install" // write the node's image and its NoCloud data
	Wipe    Action = "wipe"    // wipe every disk, reinstall without join data
	Inspect Action = "inspect" // report the hardware, change no disk
)

// AfterInspect is what the machine does once its inspection is reported.
type AfterInspect string

const (
	PowerOffAfterInspect AfterInspect = "poweroff" // the default: an inspected machine stays off until needed
	WaitAfterInspect     AfterInspect = "wait"     // stay in the agent (console readable) until reset
	RebootAfterInspect   AfterInspect = "reboot"   // boot again: a discovered machine goes back to waiting in iPXE
)

// Task is the agent's work order (GET /agent/v1/task).
type Task struct {
	Node   string `json:"node"`
	Action Action `json:"action"`
	// Disk is the install target; empty means the disk RootDiskHints select.
	Disk string `json:"disk"`
	// RootDiskHints select the install disk in the rootdisk package's syntax
	// ("serial=S123,size>=400G"); empty means the smallest non-removable disk that
	// fits the image.
	RootDiskHints string `json:"rootDiskHints,omitempty"`
	// Image is nil for a wipe of a node without an image: the disks stay empty.
	Image *Image `json:"image,omitempty"`
	// CIData are the NoCloud files for the CIDATA filesystem, by file name; []byte
	// marshals as base64. A wipe's have no join data.
	CIData map[string][]byte `json:"cidata"`
	Wipe   WipeOptions       `json:"wipe"`
	// AfterInspect is an inspect task's last step; empty means power off.
	AfterInspect AfterInspect `json:"afterInspect,omitempty"`
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
	// Inventory is an inspection's report.
	Inventory *Inventory `json:"inventory,omitempty"`
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

// Disk is one block device as the agent sees it: what root-disk hints match and what
// an inspection reports.
type Disk struct {
	Name   string   `json:"name"`             // kernel name: sda, vda, nvme0n1
	Path   string   `json:"path"`             // device node: /dev/sda
	ByPath string   `json:"byPath,omitempty"` // /dev/disk/by-path/..., as udev names it
	ByID   []string `json:"byId,omitempty"`   // /dev/disk/by-id/..., as udev names them
	Size   int64    `json:"size"`             // bytes
	Model  string   `json:"model,omitempty"`
	Vendor string   `json:"vendor,omitempty"`
	Serial string   `json:"serial,omitempty"`
	WWN    string   `json:"wwn,omitempty"`
	// Transport is the bus: virtio, nvme, sata, sas, scsi, usb, mmc or "".
	Transport  string `json:"transport,omitempty"`
	Rotational bool   `json:"rotational"`
	Removable  bool   `json:"removable"`
}

// Inventory is what an inspection found on the machine.
type Inventory struct {
	System   System   `json:"system"`
	Firmware Firmware `json:"firmware"`
	CPU      CPU      `json:"cpu"`
	// MemoryBytes is the installed physical memory.
	MemoryBytes int64  `json:"memoryBytes"`
	Disks       []Disk `json:"disks"`
	NICs        []NIC  `json:"nics"`
	// BMC is the baseboard management controller's LAN address, where the machine
	// exposes IPMI in band; nil when it has none or does not say.
	BMC *BMC `json:"bmc,omitempty"`
}

// System is the machine's DMI identity.
type System struct {
	Vendor  string `json:"vendor,omitempty"`
	Product string `json:"product,omitempty"`
	Serial  string `json:"serial,omitempty"`
	UUID    string `json:"uuid,omitempty"`
}

// Firmware is how the machine booted.
type Firmware struct {
	Mode string `json:"mode"` // uefi or bios
	// SecureBoot is UEFI Secure Boot's state; nil under BIOS or when unreadable.
	SecureBoot *bool `json:"secureBoot,omitempty"`
}

// CPU sums the machine's processors.
type CPU struct {
	Model   string `json:"model,omitempty"`
	Sockets int    `json:"sockets"`
	Cores   int    `json:"cores"`
	Threads int    `json:"threads"`
}

// NIC is one physical network interface.
type NIC struct {
	Name       string `json:"name"`
	MAC        string `json:"mac"`
	Driver     string `json:"driver,omitempty"`
	Link       bool   `json:"link"`                // carrier detected
	SpeedMbps  int    `json:"speedMbps,omitempty"` // 0 when unknown or down
	PCIAddress string `json:"pciAddress,omitempty"`
}

// BMC is what the machine's BMC says of its LAN channel.
type BMC struct {
	Address string `json:"address"`
	Channel int    `json:"channel"`
}

// FirmwareReport is what the agent read from the machine's firmware (POST /agent/v1/firmware).
type FirmwareReport struct {
	// UEFI: the kernel was started by UEFI firmware (/sys/firmware/efi exists).
	UEFI bool `json:"uefi"`
	// SecureBoot is the firmware's SecureBoot variable: the machine booted with Secure
	// Boot enforced. Always false without UEFI.
	SecureBoot bool `json:"secureBoot"`
}
