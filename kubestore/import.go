package kubestore

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// ImportNodes imports many nodes with the bbolt store's checks: every row is checked
// against the inventory and the other rows before any is written, and one failing row
// means nothing is written (unless ContinueOnError). The writes themselves are one
// request per row, not one transaction: a replica that dies half-way leaves the rows it
// wrote, and sending the file again finishes the rest (written rows are "unchanged").
func (s *Store) ImportNodes(ctx context.Context, rows []store.ImportRow, opts store.ImportOptions) ([]store.ImportResult, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	results := make([]store.ImportResult, len(rows))
	plans := make([]importPlan, len(rows))
	ok := make([]bool, len(rows))
	byMAC := make(map[node.MAC]int, len(rows))
	byName := make(map[string]int, len(rows))
	failed := 0
	var firstErr error
	fail := func(i int, err error) {
		results[i] = store.ImportResult{Line: rows[i].Line, Name: rows[i].Node.Name, Outcome: store.ImportFailed, Error: err.Error()}
		if firstErr == nil {
			firstErr = fmt.Errorf("line %d: %w", rows[i].Line, err)
		}
		failed++
	}
	for i := range rows {
		spec := rows[i].Node
		spec.State = node.StateRegistered
		if err := spec.Validate(); err != nil {
			fail(i, err)
			continue
		}
		if j, dup := byName[spec.Name]; dup {
			fail(i, fmt.Errorf("name %s is also on line %d: %w", spec.Name, rows[j].Line, node.ErrConflict))
			continue
		}
		if m, j, dup := firstSeen(byMAC, spec.MACs); dup {
			fail(i, fmt.Errorf("MAC %s is also on line %d: %w", m, rows[j].Line, node.ErrConflict))
			continue
		}
		byName[spec.Name] = i
		for _, m := range spec.MACs {
			byMAC[m] = i
		}
		plan, err := s.planImport(spec)
		if err != nil {
			fail(i, err)
			continue
		}
		plans[i], ok[i] = plan, true
	}
	if opts.DryRun || (failed > 0 && !opts.ContinueOnError) {
		wouldWrite := opts.DryRun && (failed == 0 || opts.ContinueOnError)
		for i := range rows {
			if !ok[i] {
				continue
			}
			r := store.ImportResult{Line: rows[i].Line, Name: rows[i].Node.Name, Outcome: store.ImportSkipped}
			if wouldWrite {
				r.Outcome = store.ImportCreated
				if plans[i].same {
					r.Outcome = store.ImportUnchanged
				}
			}
			results[i] = r
		}
		if failed > 0 {
			return results, fmt.Errorf("import: %d of %d rows failed, first %w", failed, len(rows), firstErr)
		}
		return results, nil
	}
	order := make([]int, 0, len(rows))
	for i := range rows {
		if ok[i] {
			order = append(order, i)
		}
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(rows[a].Node.Name, rows[b].Node.Name) })
	initNeeded := s.clusterInitNeeded("")
	for _, i := range order {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("import: %w", err)
		}
		p := plans[i]
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
		results[i] = store.ImportResult{Line: rows[i].Line, Name: n.Name, Outcome: outcome}
	}
	if failed > 0 {
		return results, fmt.Errorf("import: %d of %d rows failed, first %w", failed, len(rows), firstErr)
	}
	return results, nil
}

func firstSeen(seen map[node.MAC]int, macs []node.MAC) (node.MAC, int, bool) {
	for _, m := range macs {
		if j, ok := seen[m]; ok {
			return m, j, true
		}
	}
	return node.MAC{}, 0, false
}
