package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/bootyard/bootyard/pivot"
	"github.com/bootyard/bootyard/store"
)

// secretsWarning is repeated in every help text that writes or reads an export.
const secretsWarning = `An export holds SECRETS in clear: the cluster join token, the install environment
(proxy passwords, mirror credentials) and the admin password's hash. Files written with
-o are created with mode 0600; keep them so, move them over an encrypted channel and
delete them once the import is done.`

func newStoreCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Export and import the whole inventory (the pivot from the bootstrap appliance to replicas)",
		Long: `Export and import the whole inventory as JSON lines, one record per line: a header
(format bootyard-export, version 1), the settings, each image, each node with its MACs,
state and whole history, each DHCP lease. These commands open the store file directly:
stop bootyard serve on that data directory first (it holds the file's lock).

` + secretsWarning,
	}
	cmd.AddCommand(newStoreExportCommand(), newStoreImportCommand())
	return cmd
}

func newStoreExportCommand() *cobra.Command {
	var dataDir, output string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write the whole inventory, secrets included, as JSON lines",
		Long: `Write the whole inventory as JSON lines to -o (default: standard output). Exporting an
unchanged inventory twice gives the same bytes, so a diff of the source's export and the
target's export after an import proves nothing was lost.

` + secretsWarning,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := openStoreFile(dataDir)
			if err != nil {
				return err
			}
			defer st.Close()
			counts, err := writeExport(cmd, st, output)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "exported %d settings, %d images, %d nodes, %d leases\n",
				counts[store.RecordSettings], counts[store.RecordImage], counts[store.RecordNode], counts[store.RecordLease])
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data", envOr("BOOTYARD_DATA", "./data"), "data directory of the store to export (bootyard.db; env BOOTYARD_DATA)")
	cmd.Flags().StringVarP(&output, "output", "o", "-", "file to write (mode 0600), - for standard output")
	return cmd
}

// writeExport writes the export to path through a temporary file renamed into place, so
// an interrupted export never leaves a truncated file that looks complete.
func writeExport(cmd *cobra.Command, src pivot.Exporter, path string) (map[store.RecordKind]int, error) {
	if path == "-" {
		return pivot.Export(cmd.Context(), src, cmd.OutOrStdout())
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".bootyard-export-*")
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename there is nothing left to remove
	// CreateTemp makes the file 0600 already; say so, since the export holds secrets.
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("export: %w", err)
	}
	counts, err := pivot.Export(cmd.Context(), src, tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	return counts, nil
}

func newStoreImportCommand() *cobra.Command {
	var dataDir, input string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "import",
		Short: "Import an export into this store: idempotent, each record all-or-nothing",
		Long: `Import an export (-f, default standard input) into the store. Each record is written
whole or not at all; a record already stored exactly so is left unchanged, so importing
the same file twice changes nothing and adds no event. A record replaces what it names:
the node of that name with its whole history, the image of that name, the lease on that
address, the settings. A node whose MAC another node owns is refused and reported; the
other records are imported. --dry-run prints what would be created or updated and
writes nothing. The command fails when any record failed.

` + secretsWarning,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in := cmd.InOrStdin()
			if input != "-" {
				f, err := os.Open(input)
				if err != nil {
					return fmt.Errorf("import: %w", err)
				}
				defer f.Close()
				in = f
			}
			st, err := openStoreFile(dataDir)
			if err != nil {
				return err
			}
			defer st.Close()
			return runImport(cmd, st, in, dryRun)
		},
	}
	cmd.Flags().StringVar(&dataDir, "data", envOr("BOOTYARD_DATA", "./data"), "data directory of the store to import into (bootyard.db, created if missing; env BOOTYARD_DATA)")
	cmd.Flags().StringVarP(&input, "file", "f", "-", "export to read, - for standard input")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print what would change and write nothing")
	return cmd
}

func runImport(cmd *cobra.Command, dst pivot.Importer, in io.Reader, dryRun bool) error {
	rep, err := pivot.Import(cmd.Context(), dst, in, pivot.Options{DryRun: dryRun})
	if werr := rep.WriteText(cmd.OutOrStdout()); werr != nil && err == nil {
		err = werr
	}
	return err
}

// openStoreFile opens the bbolt store of a data directory for the store commands.
func openStoreFile(dataDir string) (*store.Store, error) {
	return store.Open(filepath.Join(dataDir, "bootyard.db"), store.Options{Logger: slog.New(slog.DiscardHandler)})
}
