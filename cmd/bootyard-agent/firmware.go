package main

import (
	"context"
	"log/slog"

	"github.com/bootyard/bootyard/firmware"
)

// reportFirmware tells Bootyard whether the machine booted with Secure Boot on. A
// failure is logged and the task goes on: the install does not depend on it.
func reportFirmware(ctx context.Context, log *slog.Logger, api *apiClient) {
	f, err := firmware.Read("/sys/firmware/efi")
	if err != nil {
		log.Warn("could not read the firmware's Secure Boot state", slog.Any("err", err))
		return
	}
	log.Info("firmware", slog.Bool("uefi", f.UEFI), slog.Bool("secure_boot", f.SecureBoot))
	if err := api.firmware(ctx, f); err != nil {
		log.Warn("could not report the firmware's Secure Boot state", slog.Any("err", err))
	}
}
