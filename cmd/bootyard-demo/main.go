// Command bootyard-demo runs Bootyard's lab on this machine without Vagrant: a network
// namespace with a bridge, Bootyard answering DHCP on it, and two QEMU machines (BIOS and
// UEFI) that network-boot, install a small demo image and show up on the web page, which
// is forwarded to 127.0.0.1 on the host. Ctrl-C stops everything and removes the namespace.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/bootyard/bootyard/images"
)

// options are the demo's flags.
type options struct {
	bootyard       string
	dataDir        string
	listen         string
	kernelCache    string
	untilInstalled bool
	secureBoot     bool
	timeout        time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.bootyard, "bootyard", "bin/bootyard", "bootyard binary (bootyard-agent must sit beside it)")
	flag.StringVar(&o.dataDir, "data", ".cache/demo", "demo data directory (store, agent files, disks); wiped at start")
	flag.StringVar(&o.listen, "listen", "127.0.0.1:8080", "host address where the web page is forwarded")
	flag.StringVar(&o.kernelCache, "kernel-cache", ".cache/kernel", "Debian kernel cache for the agent (make images)")
	flag.BoolVar(&o.untilInstalled, "until-installed", false, "exit 0 as soon as both machines are installed (for tests)")
	flag.BoolVar(&o.secureBoot, "secure-boot", false, "run the UEFI machine on firmware that enforces Secure Boot; it boots through the signed shim and GRUB")
	flag.DurationVar(&o.timeout, "timeout", 0, "give up after this long (0: run until Ctrl-C)")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	if err := run(ctx, o, log); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, log *slog.Logger) error {
	if os.Geteuid() != 0 {
		return errors.New("the demo makes a network namespace and tap devices: run it as root")
	}
	for _, tool := range []string{"ip", "qemu-system-x86_64"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not installed (make demo installs iproute2 and qemu-system-x86)", tool)
		}
	}
	bin, err := filepath.Abs(o.bootyard)
	if err != nil {
		return err
	}
	data, err := filepath.Abs(o.dataDir)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(data); err != nil {
		return err
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}

	// The agent's kernel and initramfs, served by Bootyard from <data>/agent.
	build := exec.CommandContext(ctx, bin, "image", "build-agent", "--data", data, "--kernel-cache", o.kernelCache)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build the agent (make images): %w", err)
	}

	// The image the machines install: a tiny OS that boots through shim and GRUB.
	spec, err := demoImageSpec(ctx, bin, o.kernelCache, log)
	if err != nil {
		return err
	}

	lab, err := newLab(fmt.Sprintf("bootyard-demo-%d", os.Getpid()), log)
	if err != nil {
		return err
	}
	// Everything the demo made goes away, whatever happens below.
	defer lab.close()

	srv, err := lab.startBootyard(bin, data)
	if err != nil {
		return err
	}
	fwd, err := forward(o.listen, lab.name, labAddr+":8080", log)
	if err != nil {
		return err
	}
	defer fwd.Close()

	api := &client{base: "http://" + o.listen, token: srv.token}
	if err := api.waitHealthy(ctx); err != nil {
		return err
	}
	buildImage := func(path string) error { return images.BuildDemoImage(ctx, spec, path) }
	if err := seedInventory(ctx, api, data, o.secureBoot, buildImage); err != nil {
		return err
	}
	for _, m := range machines {
		if err := lab.startVM(ctx, m, data, o.secureBoot); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "\nBootyard demo is up: open http://%s/ (user admin, password in %s)\n"+
		"Two machines are network-booting: %s (BIOS) and %s (UEFI%s). Ctrl-C stops the demo.\n"+
		"Their serial consoles are %s and %s: once installed, the UEFI machine boots the demo OS,\n"+
		"which prints \"Bootyard demo OS booted; Secure Boot: on|off\" there.\n\n",
		o.listen, filepath.Join(data, "admin-token"), machines[0].name, machines[1].name, sbNote(o.secureBoot),
		filepath.Join(data, machines[0].name+".serial"), filepath.Join(data, machines[1].name+".serial"))

	return watch(ctx, api, o.untilInstalled, log)
}

// watch prints state changes until ctx ends or, with untilInstalled, both are installed.
func watch(ctx context.Context, api *client, untilInstalled bool, log *slog.Logger) error {
	last := map[string]string{}
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		states, err := api.states(ctx)
		if err == nil {
			installed := 0
			for _, m := range machines {
				st := states[m.name]
				if st != last[m.name] {
					log.Info("node state", slog.String("node", m.name), slog.String("state", st))
					last[m.name] = st
				}
				if st == "installed" || st == "active" {
					installed++
				}
			}
			if untilInstalled && installed == len(machines) {
				fmt.Fprintln(os.Stderr, "both machines are installed:", strings.Join(summary(states), ", "))
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if untilInstalled || errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("stopped before both machines were installed: %s", strings.Join(summary(last), ", "))
			}
			fmt.Fprintln(os.Stderr, "\nstopping the demo")
			return nil
		case <-tick.C:
		}
	}
}

func sbNote(secureBoot bool) string {
	if secureBoot {
		return ", Secure Boot enforced, through shim and GRUB"
	}
	return ""
}

func summary(states map[string]string) []string {
	var out []string
	for _, m := range machines {
		out = append(out, m.name+"="+states[m.name])
	}
	return out
}
