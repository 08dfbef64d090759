package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/bootyard/bootyard/node"
)

func newNodeCommand(cl *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "node", Short: "Import, list, show and delete machines"}
	cmd.AddCommand(newNodeImportCommand(cl), newNodeListCommand(cl), newNodeShowCommand(cl),
		newNodeDeleteCommand(cl), newNodeRetryCommand(cl), newNodeJoinCommand(cl), newNodeSeedISOCommand(cl),
		newNodeInspectCommand(cl), newNodeAdoptBMCCommand(cl),
		newNodePowerCommand(cl), newNodeBMCCommand(cl))
	return cmd
}

func newNodeImportCommand(cl *clientFlags) *cobra.Command {
	var role, name, ip, gateway, image, disk, hints, output, file, uefiLoader string
	var dns, labels, taints []string
	var bulk bulkImportFlags
	var bmcSet bmcFlags
	cmd := &cobra.Command{
		Use:   "import MAC [MAC...] | import -f FILE",
		Short: "Register a machine by MAC as a server or worker node, or many from a CSV or JSON file",
		Long: `Register one machine by MAC, or many with -f: a CSV file whose header names the
columns (mac,name,role,ip,gateway,dns,labels,taints,image,root_disk_hints,bmc,bmc_user,bmc_password;
mac and role are required;
several values in a cell are separated by ";") or a JSON array of import objects.
Every row is checked first and nothing is imported if any row fails, unless
--continue-on-error. Importing the same file again changes nothing.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if file != "" {
				if len(args) > 0 {
					return fmt.Errorf("give MACs or -f FILE, not both")
				}
				return importFile(cmd, cl, file, bulk, output)
			}
			if len(args) == 0 || role == "" {
				return fmt.Errorf("import needs at least one MAC and --role (or -f FILE)")
			}
			in := map[string]any{"macs": args, "role": role}
			if name != "" {
				in["name"] = name
			}
			if ip != "" {
				in["ip"] = ip
			}
			if gateway != "" {
				in["gateway"] = gateway
			}
			if len(dns) > 0 {
				in["dns"] = dns
			}
			if image != "" {
				in["image"] = image
			}
			if disk != "" {
				in["disk"] = disk
			}
			if hints != "" {
				in["rootDiskHints"] = hints
			}
			if uefiLoader != "" {
				in["uefiLoader"] = uefiLoader
			}
			if len(labels) > 0 {
				m := map[string]string{}
				for _, l := range labels {
					k, v, err := node.ParseLabel(l)
					if err != nil {
						return err
					}
					m[k] = v
				}
				in["labels"] = m
			}
			if len(taints) > 0 {
				in["taints"] = taints
			}
			if err := bmcSet.apply(in, cmd.InOrStdin()); err != nil {
				return err
			}
			var n node.Node
			if err := cl.do(cmd.Context(), "POST", "/api/v1/nodes", in, &n); err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(cmd.OutOrStdout(), n)
			}
			extra := ""
			if n.ClusterInit {
				extra = " (cluster-init)"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "imported %s: %s%s, %s, MAC %s\n", n.Name, n.Role, extra, n.State, joinMACs(n.MACs))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&role, "role", "", "server or worker (required)")
	f.StringVar(&name, "name", "", "node name (default: derived from the MAC)")
	f.StringVar(&ip, "ip", "", "static address in CIDR form, e.g. 10.20.0.31/24")
	f.StringVar(&gateway, "gateway", "", "gateway for the static address")
	f.StringSliceVar(&dns, "dns", nil, "DNS servers for the static address")
	f.StringArrayVar(&labels, "label", nil, "label key=value (repeatable)")
	f.StringArrayVar(&taints, "taint", nil, "taint key=value:Effect (repeatable)")
	f.StringVar(&image, "image", "", "OS image (default: the cluster's default image)")
	f.StringVar(&disk, "disk", "", "target disk, e.g. /dev/sda (default: the disk the root-disk hints choose)")
	f.StringVar(&hints, "root-disk-hints", "", `root-disk hints in Ironic's syntax, e.g. "serial=S123" or "size>=400G,rotational=false"
(default: the image's hints, else the smallest non-removable disk that fits)`)
	f.StringVar(&uefiLoader, "uefi-loader", "", "ipxe or shim (Secure Boot) for this node (default: the site's setting)")
	f.StringVarP(&output, "output", "o", "text", "text or json")
	f.StringVarP(&file, "file", "f", "", "import every node of a CSV (.csv) or JSON array (.json) file; - reads CSV from stdin")
	f.BoolVar(&bulk.continueOnError, "continue-on-error", false, "with -f: import the good rows even when some fail")
	f.BoolVar(&bulk.dryRun, "dry-run", false, "with -f: check every row, import nothing")
	bmcSet.register(f)
	return cmd
}

func newNodeListCommand(cl *clientFlags) *cobra.Command {
	var output, role, state, selector, prefix string
	var limit, chunk int
	var hw hardwareFilter
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List nodes (every page, streamed)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			for k, v := range map[string]string{"role": role, "state": state, "labelSelector": selector, "name": prefix} {
				if v != "" {
					q.Set(k, v)
				}
			}
			var p nodePrinter
			if output == "json" {
				p = &jsonNodePrinter{w: cmd.OutOrStdout()}
			} else {
				p = &tableNodePrinter{tw: tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)}
			}
			hw.set(q)
			if err := listNodePages(cmd.Context(), cl, q, chunk, limit, p.page); err != nil {
				return err
			}
			return p.end()
		},
	}
	f := cmd.Flags()
	f.StringVarP(&output, "output", "o", "table", "table or json")
	f.StringVar(&role, "role", "", "only this role")
	f.StringVar(&state, "state", "", "only this state")
	f.StringVarP(&selector, "selector", "l", "", "label selector, e.g. rack=r7,gpu or 'rack in (r1,r2)'")
	f.StringVar(&prefix, "name", "", "only names starting with this")
	f.IntVar(&limit, "limit", 0, "print at most this many nodes (0: all)")
	f.IntVar(&chunk, "chunk-size", 500, "nodes per API page")
	hw.flags(cmd)
	return cmd
}

// listNodePages walks GET /api/v1/nodes page by page, handing each page to fn as it
// arrives, so listing 100,000 nodes never holds them all.
func listNodePages(ctx context.Context, cl *clientFlags, q url.Values, chunk, limit int, fn func([]node.Node) error) error {
	printed := 0
	for {
		size := chunk
		if limit > 0 && limit-printed < size {
			size = limit - printed
		}
		q.Set("limit", strconv.Itoa(size))
		var page struct {
			Items    []node.Node `json:"items"`
			Continue string      `json:"continue"`
		}
		if err := cl.do(ctx, "GET", "/api/v1/nodes?"+q.Encode(), nil, &page); err != nil {
			return err
		}
		if err := fn(page.Items); err != nil {
			return err
		}
		printed += len(page.Items)
		if page.Continue == "" || (limit > 0 && printed >= limit) {
			return nil
		}
		q.Set("continue", page.Continue)
	}
}

type nodePrinter interface {
	page([]node.Node) error
	end() error
}

// tableNodePrinter flushes after every page: columns line up within a page, and the
// first rows show at once.
type tableNodePrinter struct {
	tw     *tabwriter.Writer
	header bool
}

func (p *tableNodePrinter) page(nodes []node.Node) error {
	if !p.header {
		fmt.Fprintln(p.tw, "NAME\tROLE\tSTATE\tMAC\tIP\tAGE")
		p.header = true
	}
	for _, n := range nodes {
		role := string(n.Role)
		if n.ClusterInit {
			role += "*"
		}
		if role == "" {
			role = "-"
		}
		ip := "-"
		if n.IP.IsValid() {
			ip = n.IP.String()
		}
		fmt.Fprintf(p.tw, "%s\t%s\t%s\t%s\t%s\t%s\n", n.Name, role, n.State, joinMACs(n.MACs), ip, age(n.CreatedAt))
	}
	return p.tw.Flush()
}

func (p *tableNodePrinter) end() error { return p.page(nil) }

// jsonNodePrinter writes one JSON array, element by element.
type jsonNodePrinter struct {
	w     io.Writer
	count int
}

func (p *jsonNodePrinter) page(nodes []node.Node) error {
	for _, n := range nodes {
		b, err := json.MarshalIndent(n, "  ", "  ")
		if err != nil {
			return err
		}
		sep := ",\n  "
		if p.count == 0 {
			sep = "[\n  "
		}
		if _, err := fmt.Fprintf(p.w, "%s%s", sep, b); err != nil {
			return err
		}
		p.count++
	}
	return nil
}

func (p *jsonNodePrinter) end() error {
	if p.count == 0 {
		_, err := io.WriteString(p.w, "[]\n")
		return err
	}
	_, err := io.WriteString(p.w, "\n]\n")
	return err
}

func newNodeShowCommand(cl *clientFlags) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "show NAME|MAC",
		Short: "Show a node and its events",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var n node.Node
			ref := url.PathEscape(args[0])
			if err := cl.do(cmd.Context(), "GET", "/api/v1/nodes/"+ref, nil, &n); err != nil {
				return err
			}
			var events []node.Event
			if err := cl.do(cmd.Context(), "GET", "/api/v1/nodes/"+url.PathEscape(n.Name)+"/events", nil, &events); err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"node": n, "events": events})
			}
			printNode(cmd.OutOrStdout(), n, events)
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}

func printNode(w io.Writer, n node.Node, events []node.Event) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	role := string(n.Role)
	if n.ClusterInit {
		role += " (cluster-init)"
	}
	fmt.Fprintf(tw, "Name:\t%s\n", n.Name)
	fmt.Fprintf(tw, "Role:\t%s\n", role)
	state := string(n.State)
	if n.StateReason != "" {
		state += " (" + n.StateReason + ")"
	}
	fmt.Fprintf(tw, "State:\t%s since %s\n", state, n.StateSince.Format(time.RFC3339))
	fmt.Fprintf(tw, "MACs:\t%s\n", joinMACs(n.MACs))
	if n.IP.IsValid() {
		fmt.Fprintf(tw, "IP:\t%s\n", n.IP)
	}
	if n.Gateway.IsValid() {
		fmt.Fprintf(tw, "Gateway:\t%s\n", n.Gateway)
	}
	if n.BMC != nil {
		fmt.Fprintf(tw, "BMC:\t%s\n", bmcText(n.BMC))
	}
	if len(n.Labels) > 0 {
		fmt.Fprintf(tw, "Labels:\t%s\n", strings.Join(node.LabelList(n.Labels), ", "))
	}
	if len(n.Taints) > 0 {
		ts := make([]string, len(n.Taints))
		for i, t := range n.Taints {
			ts[i] = t.String()
		}
		fmt.Fprintf(tw, "Taints:\t%s\n", strings.Join(ts, ", "))
	}
	if n.Image != "" {
		fmt.Fprintf(tw, "Image:\t%s\n", n.Image)
	}
	if n.Disk != "" {
		fmt.Fprintf(tw, "Disk:\t%s\n", n.Disk)
	}
	if !n.RootDiskHints.IsZero() {
		fmt.Fprintf(tw, "Root-disk hints:\t%s\n", n.RootDiskHints)
	}
	if n.Boot.Firmware != "" {
		fmt.Fprintf(tw, "Firmware:\t%s (arch %d)\n", n.Boot.Firmware, n.Boot.Arch)
	}
	if n.UEFILoader != "" {
		fmt.Fprintf(tw, "UEFI loader:\t%s\n", n.UEFILoader)
	}
	if n.SecureBoot != nil {
		sb := "off"
		if *n.SecureBoot {
			sb = "on"
		}
		fmt.Fprintf(tw, "Secure Boot:\t%s (as the agent last read it from the firmware)\n", sb)
	}
	if c := n.Cluster; c != nil {
		ready := "NotReady"
		if c.Ready {
			ready = "Ready"
		}
		roles := strings.Join(c.Roles, ",")
		if roles == "" {
			roles = "-"
		}
		fmt.Fprintf(tw, "Kubernetes:\t%s, roles %s, kubelet %s (seen %s)\n", ready, roles, c.KubeletVersion, c.ObservedAt.Format(time.RFC3339))
	}
	printHardware(tw, n)
	fmt.Fprintf(tw, "Created:\t%s\n", n.CreatedAt.Format(time.RFC3339))
	_ = tw.Flush()
	if len(events) > 0 {
		fmt.Fprintln(w, "Events:")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, e := range events {
			what := string(e.Type)
			if e.Type == node.EventTransition {
				from := string(e.From)
				if from == "" {
					from = "-"
				}
				what = from + " → " + string(e.To)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", e.Time.Format(time.RFC3339), what, e.Source, e.Reason)
		}
		_ = tw.Flush()
	}
}

func newNodeDeleteCommand(cl *clientFlags) *cobra.Command {
	var confirm, mode string
	var force bool
	cmd := &cobra.Command{
		Use:   "delete NAME --confirm NAME",
		Short: "Delete a node: drain, remove from the cluster, wipe and reinstall without join data",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := map[string]any{"confirm": confirm, "force": force, "mode": mode}
			var out map[string]any
			if err := cl.do(cmd.Context(), "DELETE", "/api/v1/nodes/"+url.PathEscape(args[0]), body, &out); err != nil {
				return err
			}
			if out["removed"] == true {
				fmt.Fprintf(cmd.OutOrStdout(), "removed %s (it had not started installing)\n", args[0])
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleting %s: now %v\n", args[0], out["state"])
			return nil
		},
	}
	cmd.Flags().StringVar(&confirm, "confirm", "", "the node's name again, to confirm")
	cmd.Flags().BoolVar(&force, "force", false, "delete even if it breaks etcd quorum or removes the cluster-init node")
	cmd.Flags().StringVar(&mode, "mode", "reinstall", "reinstall (wipe disks, reinstall without join data) or uninstall (run llmos-uninstall.sh, keep the OS)")
	return cmd
}

func newNodeRetryCommand(cl *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "retry NAME",
		Short: "Retry a failed install or wipe",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var n node.Node
			if err := cl.do(cmd.Context(), "POST", "/api/v1/nodes/"+url.PathEscape(args[0])+"/retry", nil, &n); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: now %s\n", n.Name, n.State)
			return nil
		},
	}
}

func newNodeJoinCommand(cl *clientFlags) *cobra.Command {
	var reveal bool
	cmd := &cobra.Command{
		Use:   "join-command NAME",
		Short: "Show the join configuration and command rendered for a node (token redacted unless --reveal)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "/api/v1/nodes/" + url.PathEscape(args[0]) + "/join-command"
			if reveal {
				path += "?reveal=true"
			}
			var out struct {
				Command string `json:"command"`
			}
			if err := cl.do(cmd.Context(), "GET", path, nil, &out); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), strings.TrimRight(out.Command, "\n"))
			return nil
		},
	}
	cmd.Flags().BoolVar(&reveal, "reveal", false, "show the join token in plain text (admin)")
	return cmd
}

func newNodeSeedISOCommand(cl *clientFlags) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "seed-iso NAME -o seed.iso",
		Short: "Write a NoCloud seed ISO (label cidata) for a VM built from a cloud-init template",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := cl.raw(cmd.Context(), "GET", "/api/v1/nodes/"+url.PathEscape(args[0])+"/seed.iso", nil)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			f, err := os.OpenFile(output, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
			if err != nil {
				return err
			}
			if _, err := io.Copy(f, resp.Body); err != nil {
				f.Close()
				return fmt.Errorf("write %s: %w", output, err)
			}
			if err := f.Close(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\n", output)
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "seed.iso", "file to write")
	return cmd
}

func joinMACs(macs []node.MAC) string {
	s := make([]string, len(macs))
	for i, m := range macs {
		s[i] = m.String()
	}
	return strings.Join(s, ",")
}

func age(t time.Time) string {
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
