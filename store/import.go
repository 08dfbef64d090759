package store

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/bootyard/bootyard/node"
)

// ImportRow is one node of a bulk import and the line (CSV) or position (JSON array,
// from 1) it came from, so every error names the row the operator must fix.
type ImportRow struct {
	Line int
	Node node.Node
}

// ImportOutcome is what a bulk import did with one row.
type ImportOutcome string

const (
	ImportCreated   ImportOutcome = "created"   // a new node, or a discovered/deleted record taken over
	ImportUnchanged ImportOutcome = "unchanged" // already imported with exactly this spec
	ImportFailed    ImportOutcome = "failed"    // see Error; nothing of this row was written
	ImportSkipped   ImportOutcome = "skipped"   // valid, but not written because another row failed
)

// ImportResult reports one row.
type ImportResult struct {
	Line    int           `json:"line"`
	Name    string        `json:"name,omitempty"`
	Outcome ImportOutcome `json:"outcome"`
	Error   string        `json:"error,omitempty"`
}

// ImportOptions tune ImportNodes.
type ImportOptions struct {
	// ContinueOnError writes the rows that pass and reports the others; without it one
	// failing row means nothing is written.
	ContinueOnError bool
	// DryRun checks every row as an import would and writes nothing: the web page's
	// preview before the operator commits.
	DryRun bool
	Source string
}

// ImportNodes imports many nodes in one transaction: one fsync for the whole batch is
// what lets a rack (or 100,000 rows) import in seconds, and it makes the import
// all-or-nothing. Every row is checked (against the store and against the other rows)
// before any is written; rows already imported with the same spec are unchanged, so
// sending the same file again is harmless. The error, when rows fail, wraps
// node.ErrInvalid or node.ErrConflict and the results say which rows and why.
func (s *Store) ImportNodes(ctx context.Context, rows []ImportRow, opts ImportOptions) ([]ImportResult, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	var results []ImportResult
	type written struct{ before, after node.Node }
	var done []written
	var check ImportCheck[importPlan]
	// A dry run only reads (it returns before the writes below), so it does not hold the
	// write lock while it checks a big file.
	run := s.db.Update
	if opts.DryRun {
		run = s.db.View
	}
	err := run(func(tx *bolt.Tx) error {
		done = done[:0]
		var err error
		check, err = CheckImportRows(ctx, rows, func(spec node.Node) (importPlan, error) { return planImport(tx, spec) })
		results = check.Results
		if err != nil {
			return err
		}
		if !check.Writes(opts) {
			check.Unwritten(rows, opts, func(p importPlan) bool { return p.same })
			return errRolledBack
		}
		plans := check.Plans
		// Write in name order: bbolt appends to the end of its pages, not into their middle.
		order := check.Order(rows)
		now := s.now()
		initNeeded := true
		if needed, err := clusterInitNeeded(tx, ""); err != nil {
			return err
		} else {
			initNeeded = needed
		}
		var pending []indexEntry
		for _, i := range order {
			p := plans[i]
			n, err := s.writeImport(tx, p, opts.Source, now, &initNeeded, &pending)
			if err != nil {
				// Rows were checked above; a failure here is the store's, not the row's.
				return fmt.Errorf("line %d: %w", rows[i].Line, err)
			}
			outcome := ImportCreated
			if p.same {
				outcome = ImportUnchanged
			} else {
				var before node.Node
				if p.prior != nil {
					before = *p.prior
				}
				done = append(done, written{before, n})
			}
			results[i] = ImportResult{Line: rows[i].Line, Name: n.Name, Outcome: outcome}
		}
		return flushIndex(tx, pending)
	})
	if err != nil && err != errRolledBack {
		return nil, fmt.Errorf("import: %w", err)
	}
	for _, w := range done {
		s.updated(w.before, w.after)
	}
	return results, check.Err(len(rows))
}

// errRolledBack aborts the transaction of a bulk import whose rows failed the checks.
var errRolledBack = fmt.Errorf("import rolled back")

func firstSeen(seen map[node.MAC]int, macs []node.MAC) (node.MAC, int, bool) {
	for _, m := range macs {
		if j, ok := seen[m]; ok {
			return m, j, true
		}
	}
	return node.MAC{}, 0, false
}
