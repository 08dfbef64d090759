package store

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/bootyard/bootyard/node"
)

// ImportCheck is a bulk import after every row was checked and before any is written:
// what makes an import all-or-nothing in every backend. P is the backend's plan of one
// row against its inventory.
type ImportCheck[P any] struct {
	Results  []ImportResult // failed rows are filled in; the others are the writer's
	Plans    []P
	OK       []bool // the row passed every check
	Failed   int
	FirstErr error
}

// CheckImportRows validates every row, refuses a name or MAC used by two rows of the
// file, and asks plan to check each remaining row against the inventory (plan's error
// fails the row).
func CheckImportRows[P any](ctx context.Context, rows []ImportRow, plan func(spec node.Node) (P, error)) (ImportCheck[P], error) {
	c := ImportCheck[P]{Results: make([]ImportResult, len(rows)), Plans: make([]P, len(rows)), OK: make([]bool, len(rows))}
	byMAC := make(map[node.MAC]int, len(rows))
	byName := make(map[string]int, len(rows))
	fail := func(i int, err error) {
		c.Results[i] = ImportResult{Line: rows[i].Line, Name: rows[i].Node.Name, Outcome: ImportFailed, Error: err.Error()}
		if c.FirstErr == nil {
			c.FirstErr = fmt.Errorf("line %d: %w", rows[i].Line, err)
		}
		c.Failed++
	}
	for i := range rows {
		if err := ctx.Err(); err != nil {
			return c, err
		}
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
		p, err := plan(spec)
		if err != nil {
			fail(i, err)
			continue
		}
		c.Plans[i], c.OK[i] = p, true
	}
	return c, nil
}

// Writes reports whether the import writes anything: not a dry run, and no row failed
// unless the operator asked to go on.
func (c *ImportCheck[P]) Writes(opts ImportOptions) bool {
	return !opts.DryRun && (c.Failed == 0 || opts.ContinueOnError)
}

// Unwritten fills the results of an import that writes nothing: a dry run says what each
// good row would become (same: the row is already imported so), a refused import that
// the good rows were skipped for the others' sake.
func (c *ImportCheck[P]) Unwritten(rows []ImportRow, opts ImportOptions, same func(P) bool) {
	wouldWrite := opts.DryRun && (c.Failed == 0 || opts.ContinueOnError)
	for i := range rows {
		if !c.OK[i] {
			continue
		}
		r := ImportResult{Line: rows[i].Line, Name: rows[i].Node.Name, Outcome: ImportSkipped}
		if wouldWrite {
			r.Outcome = ImportCreated
			if same(c.Plans[i]) {
				r.Outcome = ImportUnchanged
			}
		}
		c.Results[i] = r
	}
}

// Order lists the rows that passed, by node name: the order every backend writes them in.
func (c *ImportCheck[P]) Order(rows []ImportRow) []int {
	order := make([]int, 0, len(rows))
	for i := range rows {
		if c.OK[i] {
			order = append(order, i)
		}
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(rows[a].Node.Name, rows[b].Node.Name) })
	return order
}

// Err is the import's error when rows failed, nil otherwise.
func (c *ImportCheck[P]) Err(rows int) error {
	if c.Failed == 0 {
		return nil
	}
	return fmt.Errorf("import: %d of %d rows failed, first %w", c.Failed, rows, c.FirstErr)
}
