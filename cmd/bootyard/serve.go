package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/bootyard/bootyard/boot"
	"github.com/bootyard/bootyard/machine"
	"github.com/bootyard/bootyard/store"
	"github.com/bootyard/bootyard/web"
)

// serveOptions are every setting of `bootyard serve`; each is a flag, a BOOTYARD_* variable
// and a key of the YAML config file.
type serveOptions struct {
	configFile   string
	dataDir      string
	listen       string
	advertiseURL string
	adminToken   *string // the root command's --admin-token (BOOTYARD_ADMIN_TOKEN): for serve, the server's token
	edge         edgeOptions
	logFormat    string
	logLevel     string
	limits       store.Limits
	store        storeOptions
	boot         bootOptions
	tls          tlsOptions
	cluster      clusterOptions
	bmc          bmcOptions
	// trustUnverified serves machine secrets to requests whose address Bootyard cannot
	// verify as the node's (no lease, no static IP, not seen in its own DHCP).
	trustUnverified bool
	// inspectDiscovered inspects each unknown machine's hardware on its first boot.
	inspectDiscovered bool
	// releaseExePages gives back the executable's start-up pages once serving starts.
	releaseExePages bool
}

func newServeCommand(cl *clientFlags) *cobra.Command {
	o := &serveOptions{adminToken: &cl.token}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the provisioning server (API, web page, iPXE, NoCloud; DHCP and TFTP when an interface is named)",
		Long: `Run the Bootyard server.

Every setting below can also come from the environment (BOOTYARD_ plus the flag name in
upper case with - as _, e.g. BOOTYARD_DHCP_RANGE) or from a YAML file given with --config
(keys are the flag names). Flags beat the environment, the environment beats the file.

DHCP is never started unless --dhcp-interface names an interface.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyConfig(cmd.Flags(), o.configFile); err != nil {
				return err
			}
			return runServe(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.configFile, "config", "", "YAML config file (keys are these flag names)")
	f.StringVar(&o.dataDir, "data", "./data", "data directory (bbolt store, admin token, images)")
	f.StringVar(&o.listen, "listen", "127.0.0.1:8080", "address:port of the API, web page, iPXE and NoCloud endpoints")
	f.StringVar(&o.advertiseURL, "advertise-url", "", "URL machines use to reach this server (default: from --listen, or the DHCP interface's address)")
	f.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.BoolVar(&o.inspectDiscovered, "inspect-discovered", false, "boot every unknown machine's first network boot into the agent's inspect mode (no disk is changed; it reboots and waits for import), so its hardware shows before import")
	f.BoolVar(&o.trustUnverified, "trust-unverified-machines", false, "serve install tokens and join data to requests Bootyard cannot verify as the node's own address (no DHCP lease, no static IP, not seen in Bootyard's DHCP): only where another DHCP server hands out addresses and the provisioning network is trusted")
	f.BoolVar(&o.releaseExePages, "release-exe-pages", true, "once started, unmap the pages of the bootyard executable that start-up read and nothing runs again (clean copies of the file: they stay in the page cache and map back when run); false keeps them resident")
	f.IntVar(&o.limits.MaxDiscovered, "max-discovered", store.DefaultMaxDiscovered,
		"discovered (not imported) machines kept; past it the longest-unseen is forgotten")
	f.IntVar(&o.limits.MaxNodeEvents, "max-node-events", store.DefaultMaxNodeEvents,
		"history entries (events and agent log lines) kept per node; the oldest are dropped first")
	f.IntVar(&o.limits.MaxNodeEventBytes, "max-node-event-bytes", store.DefaultMaxNodeEventBytes,
		"bytes of history kept per node; the oldest entries are dropped first")
	o.store.register(f)
	o.boot.register(f)
	o.tls.register(f)
	o.cluster.register(f)
	o.bmc.register(f)
	o.edge.register(f)
	return cmd
}

func newLogger(format, level string, w *os.File) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

func runServe(ctx context.Context, o *serveOptions) error {
	log, err := newLogger(o.logFormat, o.logLevel, os.Stderr)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	// Metric sources are filled in as services start; the registry reads them at scrape time.
	sources := &web.MetricSources{}
	metrics := web.NewMetrics(sources)
	hooks := &updateHooks{}
	hooks.add(metrics.ObserveTransition)
	st, turns, err := o.openStore(ctx, log, hooks.run)
	if err != nil {
		return err
	}
	// The store closes last: after every server has stopped accepting and finished.
	defer func() {
		if err := st.Close(); err != nil {
			log.Error("close store", slog.Any("err", err))
		}
	}()
	token, tokenPath, created, err := loadAdminToken(o.dataDir, *o.adminToken)
	if err != nil {
		return err
	}
	edge, err := o.edge.parse()
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(os.Stderr, "bootyard: generated the admin token in %s (the web login password for user admin; the CLI reads it from there)\n", tokenPath)
	}

	tlsCfg, err := o.tls.config(o.dataDir, o.listen, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", o.listen, err)
	}
	listeners := []net.Listener{ln}
	// Machines speak plain HTTP (firmware iPXE has no CA for us): with TLS on the
	// operator listener, they get a listener of their own that serves nothing else.
	var machineLn net.Listener
	if addr := o.tls.machineAddr(o.listen); addr != "" {
		if machineLn, err = net.Listen("tcp", addr); err != nil {
			ln.Close()
			return fmt.Errorf("--machine-listen %s: %w", addr, err)
		}
		listeners = append(listeners, machineLn)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	// fail undoes a half-started server: stop what runs, release the ports.
	fail := func(err error) error {
		cancel()
		_ = g.Wait()
		for _, l := range listeners {
			l.Close()
		}
		return err
	}
	machineAddr := listeners[len(listeners)-1].Addr()
	advertise, err := o.effectiveAdvertiseURL(machineAddr)
	if err != nil {
		return fail(err)
	}
	sources.NodeCount = st.CountNodes
	sources.Bounds = st.BoundStats
	bins, err := o.boot.binaries(ctx, o.dataDir, advertise, log)
	if err != nil {
		return fail(err)
	}
	// What Bootyard's own DHCP sees is part of the machines' identity check.
	var sightings *boot.Sightings
	var seen machine.Sightings
	if o.boot.dhcpInterface != "" {
		sightings = boot.NewSightings(0, 0, nil)
		seen = sightings
	}
	ms, err := o.machineServices(gctx, g, st, turns, bins, seen, advertise, metrics, log)
	if err != nil {
		return fail(err)
	}
	// Queued boot events are written before the store closes (defers run in reverse).
	defer ms.stop()
	o.boot.sharedLeases = o.store.backend == storeKubernetes
	if err := o.boot.start(gctx, g, st, bins, sightings, ms.grubFiles(), advertise, sources, hooks, log); err != nil {
		return fail(err)
	}
	deps := web.Deps{Inventory: st, Metrics: metrics, Join: ms.join, Images: ms.catalog, JoinTurns: turns}
	if err := o.bmc.start(gctx, g, st, hooks, metrics, &deps, &o.cluster, log); err != nil {
		return fail(err)
	}
	clusterConnected, err := o.cluster.start(gctx, g, st, &deps, log)
	if err != nil {
		return fail(err)
	}
	srv, err := web.New(web.Config{AdminToken: token, Logger: log, TLS: tlsCfg != nil, MachineURL: advertise, ClusterConnected: clusterConnected,
		MetricsToken: edge.metricsToken, TrustedProxies: edge.trustedProxies, ImageUploadLimit: edge.imageUploadLimit, Ready: st.Ready}, deps)
	if err != nil {
		return fail(err)
	}
	scheme := "http"
	if tlsCfg != nil {
		scheme = "https"
	}
	log.Info("bootyard serving", slog.String("listen", scheme+"://"+ln.Addr().String()), slog.String("advertise", advertise),
		slog.String("data", o.dataDir), slog.Bool("dhcp", o.boot.dhcpInterface != ""))
	if o.releaseExePages {
		releaseStartUpPages(log)
	}
	machines := ms.server.Handler()
	g.Go(func() error { return serveHTTP(gctx, ln, operatorAndMachines(srv.Handler(), machines), log) })
	if machineLn != nil {
		g.Go(func() error { return serveHTTP(gctx, machineLn, machines, log) })
	}
	err = g.Wait()
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info("bootyard stopped")
	return nil
}

// effectiveAdvertiseURL is what machines are told to fetch scripts and data from.
func (o *serveOptions) effectiveAdvertiseURL(bound net.Addr) (string, error) {
	if o.advertiseURL != "" {
		return strings.TrimRight(o.advertiseURL, "/"), nil
	}
	_, port, _ := net.SplitHostPort(bound.String())
	if o.boot.dhcpInterface != "" {
		ip, err := interfaceIPv4(o.boot.dhcpInterface)
		if err != nil {
			return "", err
		}
		return "http://" + net.JoinHostPort(ip.String(), port), nil
	}
	host, _, _ := net.SplitHostPort(bound.String())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return "", fmt.Errorf("--listen %s binds every address: set --advertise-url to the URL machines should use", o.listen)
	}
	return "http://" + net.JoinHostPort(host, port), nil
}
