package main

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/bootyard/bootyard/node"
)

// clusterView mirrors GET /api/v1/cluster.
type clusterView struct {
	Settings struct {
		ServerURL         string            `json:"serverURL"`
		Token             string            `json:"token"`
		TokenSet          bool              `json:"tokenSet"`
		InstallURL        string            `json:"installURL"`
		InstallEnv        map[string]string `json:"installEnv"`
		SSHAuthorizedKeys []string          `json:"sshAuthorizedKeys"`
		DefaultImage      string            `json:"defaultImage"`
		ExtraCloudConfig  string            `json:"extraCloudConfig"`
		WipeOverwrite     bool              `json:"wipeOverwrite"`
		JoinTurnMinutes   int               `json:"joinTurnMinutes"`
		UEFILoader        string            `json:"uefiLoader"`
	} `json:"settings"`
	Connected   bool        `json:"connected"`
	ClusterInit string      `json:"clusterInit"`
	Quorum      node.Quorum `json:"quorum"`
	Next        node.Quorum `json:"next"`
	Warnings    []string    `json:"warnings"`
	JoinTurn    *struct {
		Node  string    `json:"node"`
		Since time.Time `json:"since"`
		Until time.Time `json:"until"`
	} `json:"joinTurn"`
}

func newClusterCommand(cl *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "cluster", Short: "Join settings and the cluster's fault tolerance"}
	cmd.AddCommand(newClusterShowCommand(cl), newClusterSetCommand(cl))
	return cmd
}

func newClusterShowCommand(cl *clientFlags) *cobra.Command {
	var output string
	var reveal bool
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show join settings (secrets redacted), servers, majority and failure tolerance",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := "/api/v1/cluster"
			if reveal {
				path += "?reveal=true"
			}
			var v clusterView
			if err := cl.do(cmd.Context(), "GET", path, nil, &v); err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(cmd.OutOrStdout(), v)
			}
			w := cmd.OutOrStdout()
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			show := func(k, v string) {
				if v == "" {
					v = "-"
				}
				fmt.Fprintf(tw, "%s:\t%s\n", k, v)
			}
			show("Server URL", v.Settings.ServerURL)
			tok := v.Settings.Token
			if !v.Settings.TokenSet {
				tok = "(not set)"
			}
			show("Token", tok)
			show("Install URL", v.Settings.InstallURL)
			env := make([]string, 0, len(v.Settings.InstallEnv))
			for k, val := range v.Settings.InstallEnv {
				env = append(env, k+"="+val)
			}
			sort.Strings(env)
			show("Install env", strings.Join(env, " "))
			show("Extra cloud-config", v.Settings.ExtraCloudConfig)
			show("Default image", v.Settings.DefaultImage)
			show("UEFI loader", string(node.EffectiveUEFILoader(node.UEFILoader(v.Settings.UEFILoader), node.LoaderInherit)))
			show("Cluster-init node", v.ClusterInit)
			turnCap := time.Duration(v.Settings.JoinTurnMinutes) * time.Minute
			if turnCap == 0 {
				turnCap = node.DefaultJoinTurnLimit
			}
			turn := "free (servers join one at a time, each for at most " + turnCap.String() + ")"
			if t := v.JoinTurn; t != nil {
				turn = fmt.Sprintf("%s, since %s, until %s at the latest", t.Node,
					t.Since.UTC().Format(time.RFC3339), t.Until.UTC().Format(time.RFC3339))
			}
			show("Join turn", turn)
			conn := "not connected (no kubeconfig): nodes are tracked from Bootyard's own view"
			if v.Connected {
				conn = "connected"
			}
			show("Cluster", conn)
			_ = tw.Flush()
			fmt.Fprintln(w)
			tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "\tSERVERS\tMAJORITY\tFAILURE TOLERANCE")
			fmt.Fprintf(tw, "now\t%d\t%d\t%d\n", v.Quorum.Servers, v.Quorum.Majority, v.Quorum.FailureTolerance)
			fmt.Fprintf(tw, "with one more\t%d\t%d\t%d\n", v.Next.Servers, v.Next.Majority, v.Next.FailureTolerance)
			_ = tw.Flush()
			for _, warn := range v.Warnings {
				fmt.Fprintln(w, "warning:", warn)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	cmd.Flags().BoolVar(&reveal, "reveal", false, "show the join token, the installer environment's values and the extra cloud-config (admin)")
	return cmd
}

func newClusterSetCommand(cl *clientFlags) *cobra.Command {
	var serverURL, token, installURL, defaultImage, extraFile, uefiLoader string
	var sshKeys, installEnv []string
	var wipeOverwrite bool
	var joinTurnMinutes int
	cmd := &cobra.Command{
		Use:   "set",
		Short: "Change join settings (only the flags given are changed)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := cmd.Flags()
			in := map[string]any{}
			if f.Changed("server-url") {
				in["serverURL"] = serverURL
			}
			if f.Changed("token") {
				in["token"] = token
			}
			if f.Changed("install-url") {
				in["installURL"] = installURL
			}
			if f.Changed("default-image") {
				in["defaultImage"] = defaultImage
			}
			if f.Changed("ssh-key") {
				in["sshAuthorizedKeys"] = sshKeys
			}
			if f.Changed("wipe-overwrite") {
				in["wipeOverwrite"] = wipeOverwrite
			}
			if f.Changed("join-turn-minutes") {
				in["joinTurnMinutes"] = joinTurnMinutes
			}
			if f.Changed("uefi-loader") {
				in["uefiLoader"] = uefiLoader
			}
			if f.Changed("install-env") {
				env := map[string]string{}
				for _, kv := range installEnv {
					k, v, ok := strings.Cut(kv, "=")
					if !ok {
						return fmt.Errorf("--install-env %q: want NAME=value", kv)
					}
					env[k] = v
				}
				in["installEnv"] = env
			}
			if extraFile != "" {
				b, err := os.ReadFile(extraFile)
				if err != nil {
					return err
				}
				in["extraCloudConfig"] = string(b)
			}
			if len(in) == 0 {
				return fmt.Errorf("nothing to set: give at least one flag (see --help)")
			}
			var v clusterView
			if err := cl.do(cmd.Context(), "PATCH", "/api/v1/cluster", in, &v); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "cluster settings updated")
			// The answer's warnings say what will keep nodes from joining (a k3s token, ...).
			for _, warn := range v.Warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", warn)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&serverURL, "server-url", "", "https://HOST:6443 or https://HOST:9345 (the only ports LLMOS accepts)")
	f.StringVar(&token, "token", "", "the cluster's join token (a secret: never printed)")
	f.StringVar(&installURL, "install-url", "", "LLMOS install script URL (default https://get-llmos.1block.ai)")
	f.StringVar(&defaultImage, "default-image", "", "default OS image for new nodes")
	f.StringArrayVar(&sshKeys, "ssh-key", nil, "SSH authorized key for every node (repeatable; replaces the list)")
	f.StringArrayVar(&installEnv, "install-env", nil, "installer environment NAME=value (repeatable; replaces the map)")
	f.StringVar(&extraFile, "extra-cloud-config", "", "file with extra cloud-config merged into every node's user-data")
	f.BoolVar(&wipeOverwrite, "wipe-overwrite", false, "overwrite whole disks when wiping deleted nodes")
	f.IntVar(&joinTurnMinutes, "join-turn-minutes", 0, "longest time one server may hold the join turn, renewals included (0: 30)")
	f.StringVar(&uefiLoader, "uefi-loader", "", "what x86-64 UEFI machines boot first: ipxe, or shim (Secure Boot: Microsoft-signed shim, Debian-signed GRUB); empty: the default (ipxe)")
	return cmd
}
