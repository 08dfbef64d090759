// Command bootyard-agent is Bootyard's installer: a static program that runs as /init
// of the agent initramfs, streams the node's image to its disk (or wipes the disks and
// reinstalls) as the boot token's task says, reports to Bootyard, and reboots.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bootyard/bootyard/agentapi"
)

// Timeouts of the boot: drivers probe in a few seconds even under TCG emulation;
// DHCP waits out slow switch ports; a failed machine waits so a person at the console
// (or the serial log) can read why before it reboots.
const (
	deviceTimeout = 60 * time.Second
	dhcpTimeout   = 3 * time.Minute
	taskTimeout   = 2 * time.Minute
	failureWait   = 30 * time.Second
	flushInterval = 2 * time.Second
)

func main() {
	console := &consoles{w: []io.Writer{os.Stdout}}
	ship := &shipper{}
	log := slog.New(newTeeHandler(console, ship))
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "bootyard-agent runs as /init of the Bootyard agent initramfs; it is not meant to be started by hand")
		os.Exit(2)
	}
	defer func() {
		// A panic must not become a kernel panic loop without a word: say it, wait,
		// reboot.
		if r := recover(); r != nil {
			log.Error("agent crashed", slog.Any("panic", r), slog.String("stack", string(debug.Stack())))
			time.Sleep(failureWait)
			reboot(log)
		}
	}()
	ctx := context.Background()
	err := boot(ctx, log, ship, console)
	if err != nil {
		fail(ctx, log, ship, err)
	}
	reboot(log)
}

// boot is the agent's whole life as PID 1, up to the reboot.
func boot(ctx context.Context, log *slog.Logger, ship *shipper, console *consoles) error {
	if err := mountBasics(); err != nil {
		return err
	}
	raw, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return fmt.Errorf("read kernel command line: %w", err)
	}
	console.open(string(raw))
	log.Info("bootyard agent starting")
	params, err := parseCmdline(string(raw))
	if err != nil {
		return err
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return fmt.Errorf("uname: %w", err)
	}
	release := unix.ByteSliceToString(uts.Release[:])
	n, err := loadModules(log, filepath.Join("/lib/modules", release))
	if err != nil {
		return err
	}
	log.Info("drivers loaded", slog.Int("modules", n), slog.String("kernel", release))

	nic, err := bootNIC(ctx, params.MAC, deviceTimeout)
	if err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, dhcpTimeout)
	_, err = configureDHCP(dctx, log, nic)
	cancel()
	if err != nil {
		return err
	}
	api := newAPIClient(params.URL, params.Token)
	ship.connect(api)
	sctx, stopShipping := context.WithCancel(ctx)
	defer stopShipping()
	go func() {
		// As PID 1 a panic anywhere ends in a kernel panic; losing the log shipper is
		// better than losing the install.
		defer func() {
			if r := recover(); r != nil {
				log.Error("log shipper crashed; the console keeps the log", slog.Any("panic", r))
			}
		}()
		ship.run(sctx, flushInterval)
	}()

	task, err := fetchTask(ctx, log, api, 3*time.Second)
	if err != nil {
		return fmt.Errorf("get task: %w", err)
	}
	reportFirmware(ctx, log, api)
	log.Info("task received", slog.String("node", task.Node), slog.String("action", string(task.Action)),
		slog.Bool("image", task.Image != nil), slog.String("disk", task.Disk))

	in := &installer{api: api, ship: ship, log: log, sysBlock: "/sys/block", devDir: "/dev", inspector: newInspector(log)}
	// Disk drivers (virtio_blk, nvme, ahci) may still be probing.
	if task.Disk != "" {
		waitFor(ctx, deviceTimeout, func() bool {
			_, err := os.Stat(task.Disk)
			return err == nil
		})
	} else {
		in.waitForDisks(ctx, deviceTimeout)
	}
	if err := in.perform(ctx, task); err != nil {
		return err
	}
	log.Info("task done", slog.String("action", string(task.Action)))
	if task.Action == agentapi.Inspect {
		afterInspect(log, task.AfterInspect)
	}
	return nil
}

// afterInspect powers the machine off (the default) or waits, as the task says; a
// reboot is what boot's caller does anyway.
func afterInspect(log *slog.Logger, after agentapi.AfterInspect) {
	switch after {
	case agentapi.RebootAfterInspect:
		return
	case agentapi.WaitAfterInspect:
		log.Info("inspection reported: waiting here, as set (reset or power off the machine)")
		for {
			time.Sleep(time.Hour)
		}
	}
	unix.Sync()
	log.Info("inspection reported: powering off")
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		log.Error("power off failed; rebooting instead", slog.Any("err", err))
	}
}

// fetchTask asks for the task, retrying for a while when Bootyard cannot be reached (it
// may be restarting, or the switch still learning the port); a 401 or 409 is final.
func fetchTask(ctx context.Context, log *slog.Logger, api *apiClient, retryEvery time.Duration) (agentapi.Task, error) {
	ctx, cancel := context.WithTimeout(ctx, taskTimeout)
	defer cancel()
	for attempt := 1; ; attempt++ {
		task, err := api.task(ctx)
		if err == nil || errors.Is(err, errTokenRejected) || errors.Is(err, errStateChanged) {
			return task, err
		}
		log.Warn("Bootyard not reachable yet", slog.Int("attempt", attempt), slog.Any("err", err))
		select {
		case <-ctx.Done():
			return task, err
		case <-time.After(retryEvery):
		}
	}
}

// fail reports a fatal error to Bootyard when it can, prints it on the console, and
// waits before the reboot.
func fail(ctx context.Context, log *slog.Logger, ship *shipper, err error) {
	log.Error("FAILED: "+reason(err), slog.Duration("rebooting_in", failureWait))
	ship.mu.Lock()
	api := ship.api
	ship.mu.Unlock()
	switch {
	case api == nil:
		log.Error("Bootyard was not reached; nothing reported")
	case errors.Is(err, errTokenRejected):
		log.Error("the boot token was rejected (Bootyard restarted or a newer boot took over); the next boot gets a new one")
	case errors.Is(err, errStateChanged):
		log.Error("Bootyard no longer wants this task; rebooting into whatever it says now")
	default:
		if ferr := ship.flush(ctx); ferr != nil {
			log.Warn("could not send the last log lines", slog.Any("err", ferr))
		}
		if rerr := api.failed(ctx, reason(err)); rerr != nil {
			log.Error("could not report the failure", slog.Any("err", rerr))
		}
	}
	time.Sleep(failureWait)
}
