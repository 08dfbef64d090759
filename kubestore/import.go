package kubestore

import (
	"context"
	"fmt"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// ImportNodes imports many nodes with the bbolt store's checks (store.CheckImportRows):
// every row is checked against the inventory and the other rows before any is written,
// and one failing row means nothing is written (unless ContinueOnError). The writes
// themselves are one request per row, not one transaction: a replica that dies half-way
// leaves the rows it wrote, and sending the file again finishes the rest (written rows
// are "unchanged").
func (s *Store) ImportNodes(ctx context.Context, rows []store.ImportRow, opts store.ImportOptions) ([]store.ImportResult, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	check, err := store.CheckImportRows(ctx, rows, s.planImport)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	if !check.Writes(opts) {
		check.Unwritten(rows, opts, func(p importPlan) bool { return p.same })
		return check.Results, check.Err(len(rows))
	}
	initNeeded := s.clusterInitNeeded("")
	for _, i := range check.Order(rows) {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("import: %w", err)
		}
		p := check.Plans[i]
		n, err := s.writeImport(ctx, p, opts.Source, initNeeded)
		if err != nil {
			return nil, fmt.Errorf("import: line %d: %w", rows[i].Line, err)
		}
		if n.Role == node.RoleServer {
			initNeeded = false
		}
		outcome := store.ImportCreated
		if p.same {
			outcome = store.ImportUnchanged
		}
		check.Results[i] = store.ImportResult{Line: rows[i].Line, Name: n.Name, Outcome: outcome}
	}
	return check.Results, check.Err(len(rows))
}
