package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"github.com/bootyard/bootyard/bmc"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
	"github.com/bootyard/bootyard/web"
)

// bmcFlags are the BMC settings of `node import` and `node bmc`.
type bmcFlags struct {
	url, user, passwordFile, systemID string
	insecureTLS, keepPowerOn          bool
	flags                             *pflag.FlagSet
}

func (b *bmcFlags) register(f *pflag.FlagSet) {
	b.flags = f
	f.StringVar(&b.url, "bmc", "", `BMC for out-of-band power: ipmi://HOST[:PORT], redfish://HOST[:PORT] or redfish+http://HOST[:PORT] ("" removes it)`)
	f.StringVar(&b.user, "bmc-user", "", "BMC user")
	f.StringVar(&b.passwordFile, "bmc-password-file", "", "file holding the BMC password (- reads stdin); it is stored apart from the node and never shown again")
	f.StringVar(&b.systemID, "bmc-system-id", "", "Redfish system ID, when the BMC manages several systems")
	f.BoolVar(&b.insecureTLS, "bmc-insecure-tls", false, "do not verify the Redfish BMC's TLS certificate")
	f.BoolVar(&b.keepPowerOn, "bmc-keep-power-on", false, "leave the machine on after a deletion's wipe (default: power it off)")
}

// apply adds the flags given to the API body in.
func (b *bmcFlags) apply(in map[string]any, stdin io.Reader) error {
	changed := b.flags.Changed
	if changed("bmc") {
		in["bmc"] = b.url
	}
	if changed("bmc-user") {
		in["bmcUser"] = b.user
	}
	if changed("bmc-system-id") {
		in["bmcSystemID"] = b.systemID
	}
	if changed("bmc-insecure-tls") {
		in["bmcInsecureTLS"] = b.insecureTLS
	}
	if changed("bmc-keep-power-on") {
		in["bmcKeepPowerOn"] = b.keepPowerOn
	}
	if changed("bmc-password-file") {
		pw, err := readPasswordFile(b.passwordFile, stdin)
		if err != nil {
			return err
		}
		in["bmcPassword"] = pw
	}
	return nil
}

// readPasswordFile reads a password from a file (or stdin for -) without its final line
// break: a file written by echo ends in one, and no BMC password does.
func readPasswordFile(path string, stdin io.Reader) (string, error) {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(io.LimitReader(stdin, 4096))
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return "", fmt.Errorf("--bmc-password-file: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// newNodeBMCCommand changes a node's BMC settings (PATCH).
func newNodeBMCCommand(cl *clientFlags) *cobra.Command {
	var b bmcFlags
	cmd := &cobra.Command{
		Use:   "bmc NAME --bmc URL [--bmc-user USER] [--bmc-password-file FILE]",
		Short: "Set or change a node's BMC (out-of-band power)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			in := map[string]any{}
			if err := b.apply(in, cmd.InOrStdin()); err != nil {
				return err
			}
			if len(in) == 0 {
				return fmt.Errorf("nothing to change: give --bmc or another --bmc-* flag")
			}
			var n node.Node
			if err := cl.do(cmd.Context(), "PATCH", "/api/v1/nodes/"+url.PathEscape(args[0]), in, &n); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: BMC %s\n", n.Name, bmcText(n.BMC))
			return nil
		},
	}
	b.register(cmd.Flags())
	return cmd
}

// bmcText is a BMC as `node show` prints it: never a password, only whether one is set.
func bmcText(b *node.BMC) string {
	if b == nil {
		return "none"
	}
	s := b.URL()
	if b.User != "" {
		s += " user " + b.User
	}
	if b.SystemID != "" {
		s += " system " + b.SystemID
	}
	if b.PasswordSet {
		s += ", password set"
	} else {
		s += ", no password"
	}
	if b.InsecureTLS {
		s += ", TLS not verified"
	}
	if b.KeepPowerOn {
		s += ", kept on after a wipe"
	}
	return s
}

// newNodePowerCommand runs a power command through the node's BMC.
func newNodePowerCommand(cl *clientFlags) *cobra.Command {
	var bootOnce, output string
	cmd := &cobra.Command{
		Use:   "power NAME status|on|off|cycle|reset [--boot-once pxe|disk]",
		Short: "Power a machine on, off, cycle or reset it through its BMC, or read its power state",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "/api/v1/nodes/" + url.PathEscape(args[0]) + "/power"
			if args[1] == string(bmc.ActionStatus) && bootOnce == "" {
				var st web.PowerStatus
				if err := cl.do(cmd.Context(), "GET", path, nil, &st); err != nil {
					return err
				}
				if output == "json" {
					return writeJSON(cmd.OutOrStdout(), st)
				}
				if st.Error != "" {
					return fmt.Errorf("%s: %s", st.Node, st.Error)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: power %s\n", st.Node, st.Power)
				return nil
			}
			var res bmc.Result
			if err := cl.do(cmd.Context(), "POST", path, web.PowerInput{Action: args[1], BootOnce: bootOnce}, &res); err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(cmd.OutOrStdout(), res)
			}
			done := "power " + string(res.Action)
			if res.BootOnce != "" {
				done = "boot once " + string(res.BootOnce) + ", " + done
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s: done\n", res.Node, done)
			return nil
		},
	}
	cmd.Flags().StringVar(&bootOnce, "boot-once", "", "set the next boot (only) to pxe or disk first")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}

// bmcOptions tune out-of-band power in `bootyard serve`.
type bmcOptions struct {
	timeout      time.Duration
	pollInterval time.Duration
	concurrency  int
	// httpClient carries Redfish requests when set (tests: each replica its own source
	// address, so that the BMC can tell who polls it).
	httpClient *http.Client
}

func (o *bmcOptions) register(f *pflag.FlagSet) {
	f.DurationVar(&o.timeout, "bmc-timeout", bmc.DefaultTimeout, "bound on one BMC call (session setup included)")
	f.DurationVar(&o.pollInterval, "bmc-poll-interval", time.Minute, "how often each BMC's power state is read (a failing BMC backs off up to 30 minutes; with --leader-elect only the leader polls)")
	f.IntVar(&o.concurrency, "bmc-poll-concurrency", 8, "BMCs polled at once")
}

// start runs the BMC lifecycle in g, hooks it to store updates, hands it to the web
// server and to the cluster integration (cl.outOfBand), and runs the power poller.
//
// With --leader-elect the poller is leader-only work (cl.leaderWork): a BMC allows few
// sessions, and N replicas polling it would take N of them and append each event N
// times. The leader records a node's power reading in the store when it changes, and
// every replica's pages show the record (from its cache) for the nodes it does not poll.
// The lifecycle stays on every replica: its hook fires only for the replica's own
// committed writes (both stores call OnUpdate for their own writes only), so each
// transition's power action runs once, on the replica that made the transition.
func (o *bmcOptions) start(ctx context.Context, g *errgroup.Group, st store.Backend, hooks *updateHooks, metrics *web.Metrics, deps *web.Deps, cl *clusterOptions, log *slog.Logger) error {
	if o.timeout <= 0 || o.pollInterval <= 0 || o.concurrency <= 0 {
		return fmt.Errorf("--bmc-timeout, --bmc-poll-interval and --bmc-poll-concurrency must be positive")
	}
	env := bmc.Env{Dial: bmc.DialConfig{Timeout: o.timeout, HTTPClient: o.httpClient}, Logger: log}
	life := bmc.NewLifecycle(bmc.NewService(bmc.ServiceConfig{Env: env}, st))
	leaderOnly := cl.leader.enabled
	poller := bmc.NewPoller(bmc.PollerConfig{Interval: o.pollInterval, Concurrency: o.concurrency, Record: leaderOnly, Env: env}, st)
	if err := metrics.Register(poller); err != nil {
		return fmt.Errorf("bmc metrics: %w", err)
	}
	hooks.add(life.Observe)
	g.Go(func() error { return life.Run(ctx) })
	if leaderOnly {
		cl.leaderWork = append(cl.leaderWork, func(ctx context.Context) { _ = poller.Run(ctx) })
	} else {
		g.Go(func() error { return poller.Run(ctx) })
	}
	deps.Power, deps.PowerStates = life, poller
	cl.outOfBand = life
	return nil
}
