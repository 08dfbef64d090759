package main

import (
	"fmt"
	"io"
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/bootyard/bootyard/agentapi"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/rootdisk"
)

func newNodeInspectCommand(cl *clientFlags) *cobra.Command {
	var after, output string
	cmd := &cobra.Command{
		Use:   "inspect NAME|MAC",
		Short: "Inspect a machine's hardware on its next network boot (changes no disk)",
		Long: `Request an inspection: the machine's next network boot runs Bootyard's agent in
inspect mode, which reports the system, firmware, CPU, memory, disks, NICs and BMC
address and changes no disk, then powers off (--after poweroff), reboots or waits.
Works for discovered machines too, so they can be told apart before import.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var n node.Node
			body := map[string]string{"after": after}
			if err := cl.do(cmd.Context(), "POST", "/api/v1/nodes/"+url.PathEscape(args[0])+"/inspect", body, &n); err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(cmd.OutOrStdout(), n)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "inspection of %s requested: it runs on the machine's next network boot, then %s\n", n.Name, n.Inspect.After)
			return nil
		},
	}
	cmd.Flags().StringVar(&after, "after", "poweroff", "what the machine does once it has reported: poweroff, reboot or wait")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}

func newNodeAdoptBMCCommand(cl *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "adopt-bmc NAME|MAC",
		Short: "Make the BMC address the latest inspection found the node's BMC address",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var n node.Node
			if err := cl.do(cmd.Context(), "POST", "/api/v1/nodes/"+url.PathEscape(args[0])+"/bmc/adopt", nil, &n); err != nil {
				return err
			}
			addr := ""
			if n.BMC != nil {
				addr = n.BMC.Address
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: BMC address %s (enter its credentials with node bmc)\n", n.Name, addr)
			return nil
		},
	}
}

// printHardware prints the latest inspection under a node's details.
func printHardware(w io.Writer, n node.Node) {
	if n.Inspect != nil {
		fmt.Fprintf(w, "Inspection:\trequested %s, runs on the next network boot, then %s\n", n.Inspect.RequestedAt.Format(time.RFC3339), n.Inspect.After)
	}
	hw := n.Hardware
	if hw == nil {
		return
	}
	fmt.Fprintf(w, "Inspected:\t%s\n", hw.InspectedAt.Format(time.RFC3339))
	fmt.Fprintf(w, "System:\t%s %s, serial %s, uuid %s\n", dash(hw.System.Vendor), dash(hw.System.Product), dash(hw.System.Serial), dash(hw.System.UUID))
	fw := hw.Firmware.Mode
	if sb := hw.Firmware.SecureBoot; sb != nil {
		fw += map[bool]string{true: ", Secure Boot on", false: ", Secure Boot off"}[*sb]
	}
	fmt.Fprintf(w, "Firmware:\t%s\n", fw)
	fmt.Fprintf(w, "CPU:\t%s: %d sockets, %d cores, %d threads\n", dash(hw.CPU.Model), hw.CPU.Sockets, hw.CPU.Cores, hw.CPU.Threads)
	fmt.Fprintf(w, "Memory:\t%s\n", node.FormatBytes(hw.MemoryBytes))
	for _, d := range hw.Disks {
		fmt.Fprintf(w, "Disk:\t%s\n", rootdisk.Describe([]agentapi.Disk{d}))
	}
	for _, nic := range hw.NICs {
		link := "down"
		if nic.Link {
			link = "up"
			if nic.SpeedMbps > 0 {
				link += fmt.Sprintf(" %d Mb/s", nic.SpeedMbps)
			}
		}
		fmt.Fprintf(w, "NIC:\t%s %s %s %s pci %s\n", nic.Name, nic.MAC, dash(nic.Driver), link, dash(nic.PCIAddress))
	}
	if hw.BMC != nil {
		fmt.Fprintf(w, "BMC found:\t%s (channel %d)\n", hw.BMC.Address, hw.BMC.Channel)
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// hardwareFilter is `node list`'s hardware flags, which the API applies before it pages
// (minMemory, minDisks, hardware), so --limit counts matching nodes.
type hardwareFilter struct {
	minMemory string
	minDisks  int
	text      string
}

func (f *hardwareFilter) flags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.minMemory, "min-memory", "", "only inspected nodes with at least this memory, e.g. 64G (GiB)")
	cmd.Flags().IntVar(&f.minDisks, "min-disks", 0, "only inspected nodes with at least this many disks")
	cmd.Flags().StringVar(&f.text, "hardware", "", "only inspected nodes whose vendor, product, serial, CPU model, or a disk's model, vendor, serial or WWN contains this (any case)")
}

// set adds the filter's API parameters to q.
func (f *hardwareFilter) set(q url.Values) {
	if f.minMemory != "" {
		q.Set("minMemory", f.minMemory)
	}
	if f.minDisks != 0 {
		q.Set("minDisks", strconv.Itoa(f.minDisks))
	}
	if f.text != "" {
		q.Set("hardware", f.text)
	}
}
