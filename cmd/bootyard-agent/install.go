package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/bootyard/bootyard/agentapi"
	"github.com/bootyard/bootyard/images/disk"
	"github.com/bootyard/bootyard/rootdisk"
)

// installer carries out a task on this machine's disks.
type installer struct {
	api  *apiClient
	ship *shipper
	log  *slog.Logger
	// sysBlock and devDir are /sys/block and /dev; tests point them elsewhere.
	sysBlock, devDir string
	// inspector gathers an inspect task's inventory.
	inspector *inspector
}

// isNoCloudFile says whether a task's cidata may hold name; anything else is refused, so
// a bug on the server cannot drop arbitrary files on a machine.
func isNoCloudFile(name string) bool {
	switch name {
	case "meta-data", "user-data", "network-config", "vendor-data":
		return true
	}
	return false
}

// perform runs the task and returns nil once Bootyard has accepted "done".
func (in *installer) perform(ctx context.Context, t agentapi.Task) error {
	if t.Action == agentapi.Inspect {
		// An inspection carries no NoCloud data and opens no disk for writing.
		return in.inspect(ctx, t, in.inspector)
	}
	for name := range t.CIData {
		if !isNoCloudFile(name) {
			return fmt.Errorf("task cidata has unexpected file %q", name)
		}
	}
	if t.CIData["meta-data"] == nil {
		return fmt.Errorf("task cidata has no meta-data")
	}
	var wiped []agentapi.DiskCheck // a wipe's read-back, which Bootyard requires
	var err error
	switch t.Action {
	case agentapi.Install:
		if t.Image == nil || t.Image.URL == "" {
			return fmt.Errorf("install task names no image")
		}
		if err := in.install(ctx, t, false); err != nil {
			return err
		}
	case agentapi.Wipe:
		if wiped, err = in.wipeAll(ctx, t.Wipe.Overwrite); err != nil {
			return err
		}
		if t.Image == nil || t.Image.URL == "" {
			in.log.Warn("wipe task names no image: the disks stay empty")
			break
		}
		if err := in.install(ctx, t, true); err != nil {
			return fmt.Errorf("reinstall after wipe: %w", err)
		}
	default:
		return fmt.Errorf("task action %q: want install, wipe or inspect", t.Action)
	}
	// Progress and log lines go out before done, which revokes the token.
	if err := in.ship.flush(ctx); err != nil {
		in.log.Warn("could not send the last progress and log lines", slog.Any("err", err))
	}
	if err := in.api.done(ctx, agentapi.Done{Action: t.Action, Wiped: wiped}); err != nil {
		return fmt.Errorf("report done: %w", err)
	}
	return nil
}

// cidataReserve is what an install needs beyond the image: the CIDATA partition, its
// alignment and the relocated GPT backup.
const cidataReserve = 16 << 20

// targetDisk is the task's disk when it names one, else the one disk its root-disk
// hints select, else the smallest non-removable disk that holds the image. The image's
// size is the served size: exact for a raw image, a lower bound for a compressed one.
// A failed selection lists the candidates, and that text becomes the failed event.
func (in *installer) targetDisk(t agentapi.Task) (string, error) {
	if t.Disk != "" {
		return t.Disk, nil
	}
	hints, err := rootdisk.Parse(t.RootDiskHints)
	if err != nil {
		return "", fmt.Errorf("task: %w", err)
	}
	disks, err := readDisks(in.sysBlock, in.devDir)
	if err != nil {
		return "", err
	}
	var need int64 = cidataReserve
	if t.Image != nil {
		need += t.Image.Size
	}
	c, err := rootdisk.Select(hints, disks, need)
	if err != nil {
		if len(disks) == 0 {
			return "", fmt.Errorf("disk missing: %w", err)
		}
		return "", err
	}
	in.log.Info("install disk chosen: "+c.Reason, slog.String("disk", c.Disk.Path), slog.Int64("disk_bytes", c.Disk.Size),
		slog.String("serial", c.Disk.Serial), slog.String("by_path", c.Disk.ByPath))
	return c.Disk.Path, nil
}

func (in *installer) disks() ([]disk.BlockDevice, error) {
	disks, err := disk.ListDisks(in.sysBlock, in.devDir)
	if err != nil {
		return nil, err
	}
	if len(disks) == 0 {
		return nil, fmt.Errorf("disk missing: no non-removable disk found")
	}
	return disks, nil
}

func (in *installer) install(ctx context.Context, t agentapi.Task, afterWipe bool) error {
	format, err := disk.ParseFormat(t.Image.Format)
	if err != nil {
		return err
	}
	path, err := in.targetDisk(t)
	if err != nil {
		return err
	}
	dev, err := disk.Open(path)
	if err != nil {
		return fmt.Errorf("disk missing: %w", err)
	}
	defer dev.Close()
	log := in.log.With(slog.String("disk", path), slog.String("image", t.Image.Name))
	log.Info("installing", slog.Int64("disk_bytes", dev.Size()), slog.Int64("image_bytes", t.Image.Size), slog.String("format", string(format)))

	if !afterWipe {
		// Old md superblocks or a GPT backup at the far end of the disk would outlive
		// the image; clear the signatures first (cheap: a few MiB).
		plan := disk.PlanWipe(dev.Size(), disk.ReadPartitions(dev), disk.WipeOptions{})
		if _, err := disk.Wipe(ctx, noDiscard{dev}, plan, nil); err != nil {
			return fmt.Errorf("clear old signatures: %w", err)
		}
	}

	body, length, err := in.api.openImage(ctx, t.Image.URL)
	if err != nil {
		return err
	}
	defer body.Close()
	total := t.Image.Size
	if total == 0 {
		total = length
	}
	start := time.Now()
	res, err := disk.WriteImage(ctx, dev, dev.Size(), body,
		disk.Image{Format: format, SHA256: t.Image.SHA256, Size: t.Image.Size},
		func(p disk.Progress) {
			in.ship.setProgress(agentapi.Progress{Phase: "write", Bytes: p.Read, Total: total, Percent: percent(p.Read, total),
				Message: fmt.Sprintf("%d MiB written", p.Written>>20)})
		})
	if err != nil {
		return fmt.Errorf("write image %s to %s: %w", t.Image.Name, path, err)
	}
	if err := dev.Sync(); err != nil {
		return fmt.Errorf("write image %s to %s: flush: %w", t.Image.Name, path, err)
	}
	secs := time.Since(start).Seconds()
	in.ship.setProgress(agentapi.Progress{Phase: "verify", Bytes: total, Total: total, Percent: 100, Message: "sha256 " + res.SHA256})
	log.Info("image written and verified", slog.Int64("bytes", res.Written), slog.String("sha256", res.SHA256),
		slog.Float64("seconds", secs), slog.Float64("mb_per_s", float64(res.Written)/1e6/max(secs, 1e-3)))

	ext, err := disk.AddCIDATA(dev, res.Written, t.CIData)
	if err != nil {
		return fmt.Errorf("CIDATA: %w", err)
	}
	in.ship.setProgress(agentapi.Progress{Phase: "cidata", Bytes: ext.Length, Total: ext.Length, Percent: 100,
		Message: fmt.Sprintf("CIDATA at %d MiB", ext.Offset>>20)})
	log.Info("CIDATA written", slog.Int64("offset", ext.Offset), slog.Int("files", len(t.CIData)))
	return nil
}

// wipeAll wipes every non-removable disk, reporting progress over all of them, then
// reads each back: a disk with a partition table or a signature left at either end
// fails the wipe, and the read-backs go to Bootyard with done.
func (in *installer) wipeAll(ctx context.Context, overwrite bool) ([]agentapi.DiskCheck, error) {
	disks, err := in.disks()
	if err != nil {
		return nil, err
	}
	var plans []disk.WipePlan
	var devs []*disk.Device
	defer func() {
		for _, d := range devs {
			d.Close()
		}
	}()
	var total int64
	for _, bd := range disks {
		dev, err := disk.Open(bd.Path)
		if err != nil {
			return nil, fmt.Errorf("wipe: %w", err)
		}
		devs = append(devs, dev)
		plan := disk.PlanWipe(dev.Size(), disk.ReadPartitions(dev), disk.WipeOptions{Overwrite: overwrite})
		plans = append(plans, plan)
		for _, r := range plan.Regions {
			total += r.Length
		}
		if overwrite {
			total += plan.Size
		}
	}
	var before int64
	for i, dev := range devs {
		rep, err := disk.Wipe(ctx, dev, plans[i], func(done, _ int64) {
			in.ship.setProgress(agentapi.Progress{Phase: "wipe", Bytes: before + done, Total: total, Percent: percent(before+done, total),
				Message: "wiping " + dev.Name()})
		})
		if err != nil {
			return nil, err
		}
		before += rep.Zeroed
		in.log.Info("disk wiped", slog.String("disk", dev.Name()), slog.Bool("discarded", rep.Discarded),
			slog.Int64("zeroed", rep.Zeroed), slog.Int("regions", len(plans[i].Regions)), slog.Bool("overwrite", overwrite))
	}
	checks := make([]agentapi.DiskCheck, 0, len(devs))
	for _, dev := range devs {
		c, err := disk.VerifyWiped(dev)
		if err != nil {
			return nil, fmt.Errorf("wipe: %w", err)
		}
		if !c.Blank {
			return nil, fmt.Errorf("wipe of %s did not hold: read back %s", dev.Name(), c.Found)
		}
		in.log.Info("disk read back blank", slog.String("disk", dev.Name()))
		checks = append(checks, agentapi.DiskCheck{Disk: dev.Name(), Size: dev.Size(), Blank: true})
	}
	return checks, nil
}

func percent(done, total int64) int {
	if total <= 0 {
		return 0
	}
	return int(min(100, done*100/total))
}

// noDiscard makes Wipe write zeros only: the pre-install signature clear must not
// discard the whole disk, which takes minutes on some controllers.
type noDiscard struct{ *disk.Device }

func (noDiscard) Discard(int64, int64) error { return disk.ErrDiscardUnsupported }

// reason is the failure text Bootyard records: the error chain, one line.
func reason(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out: " + err.Error()
	}
	return err.Error()
}
