package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/bootyard/bootyard/kubestore"
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
stop bootyard serve on that data directory first (it holds the file's lock). With
--from kubernetes (export) or --to kubernetes (import) they read or write the
Kubernetes store instead (--kubeconfig, --store-namespace; the CRDs of deploy/crds
installed): the pivot from the appliance's bbolt file to replicas in the cluster.

` + secretsWarning,
	}
	cmd.AddCommand(newStoreExportCommand(), newStoreImportCommand())
	return cmd
}

func newStoreExportCommand() *cobra.Command {
	var end storeEnd
	var output string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write the whole inventory, secrets included, as JSON lines",
		Long: `Write the whole inventory as JSON lines to -o (default: standard output). Exporting an
unchanged inventory twice gives the same bytes, so a diff of the source's export and the
target's export after an import proves nothing was lost.

` + secretsWarning,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := end.open(cmd.Context())
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
	end.register(cmd.Flags(), "from", "export")
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
	var end storeEnd
	var input string
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
			st, err := end.open(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			return runImport(cmd, st, in, dryRun)
		},
	}
	end.register(cmd.Flags(), "to", "import into")
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

// storeEnd is the store an export reads or an import writes: the bbolt file of a data
// directory or the Kubernetes store.
type storeEnd struct {
	backend, dataDir, kubeconfig, namespace string
}

// pivotStore is what both backends offer the store commands.
type pivotStore interface {
	pivot.Exporter
	pivot.Importer
	Close() error
}

// register adds the flags choosing the store; flag is "from" or "to", verb says what the
// command does with it.
func (e *storeEnd) register(f *pflag.FlagSet, flag, verb string) {
	f.StringVar(&e.backend, flag, storeBbolt, fmt.Sprintf("store to %s: bbolt (the file in --data) or kubernetes (--kubeconfig, --store-namespace)", verb))
	f.StringVar(&e.dataDir, "data", envOr("BOOTYARD_DATA", "./data"), fmt.Sprintf("data directory of the bbolt store to %s (bootyard.db; env BOOTYARD_DATA)", verb))
	f.StringVar(&e.kubeconfig, "kubeconfig", "", "kubeconfig of the cluster holding the Kubernetes store (default: the in-cluster config when running as a pod)")
	f.StringVar(&e.namespace, "store-namespace", kubestore.DefaultNamespace, "namespace of the Kubernetes store's objects")
}

func (e *storeEnd) open(ctx context.Context) (pivotStore, error) {
	switch e.backend {
	case storeBbolt:
		return openStoreFile(e.dataDir)
	case storeKubernetes:
		st, _, err := openKubeStore(ctx, "the Kubernetes store", e.kubeconfig,
			kubestore.Options{Namespace: e.namespace, Logger: slog.New(slog.DiscardHandler)})
		return st, err
	}
	return nil, fmt.Errorf("store %q: want %s or %s", e.backend, storeBbolt, storeKubernetes)
}

// openStoreFile opens the bbolt store of a data directory for the store commands.
func openStoreFile(dataDir string) (*store.Store, error) {
	return store.Open(filepath.Join(dataDir, "bootyard.db"), store.Options{Logger: slog.New(slog.DiscardHandler)})
}
