package main

import (
	"log/slog"
	"strconv"

	"github.com/bootyard/bootyard/internal/exepages"
)

// releaseStartUpPages gives back the executable's pages that start-up mapped (package
// init of ~300 packages, client-go's scheme registration, flag and config parsing, the
// store's open): 30–40 MiB of an idle serve's resident memory that nothing runs again.
// They stay in the page cache; what serving runs maps back on its first touch.
//
// It runs once, when the store is open and synced (kubestore.New waits for its caches),
// DHCP and TFTP are bound and the HTTP listeners are up, just before HTTP is served: so
// a server that answers /healthz has already released. No second release follows: the
// cluster controller's informers and leader election, which start later, run the same
// list, watch and decode code on every event and renewal, so dropping it again would
// only have it faulted back; and what the first storm maps is what the next one runs.
func releaseStartUpPages(log *slog.Logger) {
	st, err := exepages.Release()
	if err != nil {
		log.Warn("kept the executable's start-up pages", slog.Any("err", err))
		return
	}
	log.Info("released the executable's start-up pages (they stay in the page cache)",
		slog.String("file_backed_before", mib(st.FileBefore)), slog.String("file_backed_after", mib(st.FileAfter)),
		slog.Int("mappings", len(st.Released)))
}

func mib(bytes int64) string { return strconv.FormatFloat(float64(bytes)/(1<<20), 'f', 1, 64) + " MiB" }
