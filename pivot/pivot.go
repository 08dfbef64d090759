// Package pivot moves an inventory between store backends as versioned JSON lines (one
// store.Record per line): how the bootstrap appliance's bbolt file moves into the cluster.
package pivot

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// Exporter is a backend whose whole inventory can be read as records, from one snapshot.
type Exporter interface {
	ExportRecords(ctx context.Context, fn func(store.Record) error) error
}

// Importer is a backend that writes one record all-or-nothing and says what it did;
// with dryRun it writes nothing and says what it would do. Importing a record that is
// already stored must be ImportUnchanged and change nothing: that is what makes a second
// run of the same file harmless. It must be safe for concurrent use.
type Importer interface {
	ImportRecord(ctx context.Context, rec store.Record, dryRun bool) (store.ImportOutcome, error)
}

// Export writes every record of src to w, one JSON object per line, and returns how
// many records of each kind it wrote. The bytes depend only on the inventory.
func Export(ctx context.Context, src Exporter, w io.Writer) (map[store.RecordKind]int, error) {
	bw := bufio.NewWriterSize(w, 1<<20)
	enc := json.NewEncoder(bw)
	// Reasons and hostnames are text from machines: keep them as written, not as \u003c.
	enc.SetEscapeHTML(false)
	counts := map[store.RecordKind]int{}
	err := src.ExportRecords(ctx, func(rec store.Record) error {
		counts[rec.Kind]++
		return enc.Encode(canonical(rec))
	})
	if err != nil {
		return counts, fmt.Errorf("export: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return counts, fmt.Errorf("export: %w", err)
	}
	return counts, nil
}

// canonical writes a node's empty labels and taints as {} and [], never null: the
// Kubernetes store cannot tell a nil list from an empty one, and a diff of two exports
// must not either.
func canonical(rec store.Record) store.Record {
	if rec.Node == nil || (rec.Node.Labels != nil && rec.Node.Taints != nil) {
		return rec
	}
	n := *rec.Node
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	if n.Taints == nil {
		n.Taints = []node.Taint{}
	}
	rec.Node = &n
	return rec
}

// Options tune Import.
type Options struct {
	DryRun bool
	// Workers is how many records are imported at once (default 64): a backend that
	// groups concurrent writes into one commit (bbolt) or that pays a round trip per
	// write (the Kubernetes API) is only fast with several in flight.
	Workers int
	// MaxLineBytes bounds one record (default 64 MiB): a node's history is capped by the
	// store's limits, so a longer line is a damaged file, not a big node.
	MaxLineBytes int
}

// Failure is one record that was not imported, and why.
type Failure struct {
	Line  int              `json:"line"`
	Kind  store.RecordKind `json:"kind,omitempty"`
	Name  string           `json:"name,omitempty"`
	Error string           `json:"error"`
}

// Change is one record an import wrote (or, in a dry run, would write).
type Change struct {
	Line    int                 `json:"line"`
	Kind    store.RecordKind    `json:"kind"`
	Name    string              `json:"name"`
	Outcome store.ImportOutcome `json:"outcome"`
}

// Report is what an import did, record by record.
type Report struct {
	DryRun bool `json:"dryRun"`
	// Counts is records by kind, then by outcome (created, updated, unchanged, failed).
	Counts   map[store.RecordKind]map[store.ImportOutcome]int `json:"counts"`
	Changes  []Change                                         `json:"changes,omitempty"` // in line order
	Failures []Failure                                        `json:"failures,omitempty"`
}

// ErrRecordsFailed is returned (wrapped) when some records were not imported; the report
// says which. The others were imported: each record stands alone.
var ErrRecordsFailed = errors.New("some records were not imported")

// Import reads an export from r and imports each record into dst. The header must be the
// first line and name a format version this build reads; otherwise nothing is imported.
// Each record is imported all-or-nothing on its own; a record that fails (bad JSON, a
// MAC another node owns) is reported and the rest go on.
func Import(ctx context.Context, dst Importer, r io.Reader, opts Options) (Report, error) {
	if opts.Workers <= 0 {
		opts.Workers = 64
	}
	if opts.MaxLineBytes <= 0 {
		opts.MaxLineBytes = 64 << 20
	}
	rep := Report{DryRun: opts.DryRun, Counts: map[store.RecordKind]map[store.ImportOutcome]int{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), opts.MaxLineBytes)
	line := 0
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return rep, fmt.Errorf("import: line 1: %w", err)
		}
		return rep, fmt.Errorf("import: %w: empty file, want a %s header", node.ErrInvalid, store.RecordFormatName)
	}
	line++
	var header store.Record
	if err := json.Unmarshal(sc.Bytes(), &header); err != nil || header.Kind != store.RecordHeader {
		return rep, fmt.Errorf("import: line 1: %w: not a %s header", node.ErrInvalid, store.RecordFormatName)
	}
	if err := header.Validate(); err != nil {
		return rep, fmt.Errorf("import: line 1: %w", err)
	}

	type job struct {
		line int
		rec  store.Record
	}
	type result struct {
		line    int
		kind    store.RecordKind
		name    string
		outcome store.ImportOutcome
		err     error
	}
	jobs := make(chan job)
	results := make(chan result)
	var wg sync.WaitGroup
	for range opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				out, err := dst.ImportRecord(ctx, j.rec, opts.DryRun)
				results <- result{j.line, j.rec.Kind, j.rec.Name(), out, err}
			}
		}()
	}
	var collected []result
	done := make(chan struct{})
	go func() {
		for r := range results {
			collected = append(collected, r)
		}
		close(done)
	}()
	var readErr error
	for sc.Scan() {
		line++
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		var rec store.Record
		if err := json.Unmarshal(raw, &rec); err != nil {
			results <- result{line: line, outcome: store.ImportFailed, err: fmt.Errorf("%w: %v", node.ErrInvalid, err)}
			continue
		}
		if rec.Kind == store.RecordHeader {
			results <- result{line: line, kind: rec.Kind, outcome: store.ImportFailed, err: fmt.Errorf("%w: a second header", node.ErrInvalid)}
			continue
		}
		select {
		case jobs <- job{line, rec}:
		case <-ctx.Done():
			readErr = ctx.Err()
		}
		if readErr != nil {
			break
		}
	}
	if err := sc.Err(); err != nil && readErr == nil {
		readErr = fmt.Errorf("line %d: %w", line+1, err)
	}
	close(jobs)
	wg.Wait()
	close(results)
	<-done

	slices.SortFunc(collected, func(a, b result) int { return a.line - b.line })
	for _, r := range collected {
		if rep.Counts[r.kind] == nil {
			rep.Counts[r.kind] = map[store.ImportOutcome]int{}
		}
		if r.err != nil {
			rep.Counts[r.kind][store.ImportFailed]++
			rep.Failures = append(rep.Failures, Failure{Line: r.line, Kind: r.kind, Name: r.name, Error: r.err.Error()})
			continue
		}
		rep.Counts[r.kind][r.outcome]++
		if r.outcome != store.ImportUnchanged {
			rep.Changes = append(rep.Changes, Change{Line: r.line, Kind: r.kind, Name: r.name, Outcome: r.outcome})
		}
	}
	if readErr != nil {
		return rep, fmt.Errorf("import: %w", readErr)
	}
	if len(rep.Failures) > 0 {
		f := rep.Failures[0]
		return rep, fmt.Errorf("import: %d record(s) failed, first at line %d (%s %s): %s: %w",
			len(rep.Failures), f.Line, f.Kind, f.Name, f.Error, ErrRecordsFailed)
	}
	return rep, nil
}

// WriteText prints the report for an operator: each change (prefixed "would" in a dry
// run), each failure, then the counts by kind.
func (r *Report) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	verb := ""
	if r.DryRun {
		verb = "would be "
	}
	for _, c := range r.Changes {
		fmt.Fprintf(bw, "line %d: %s %s %s%s\n", c.Line, c.Kind, c.Name, verb, c.Outcome)
	}
	for _, f := range r.Failures {
		fmt.Fprintf(bw, "line %d: %s %s FAILED: %s\n", f.Line, f.Kind, f.Name, f.Error)
	}
	for _, k := range []store.RecordKind{store.RecordSettings, store.RecordImage, store.RecordNode, store.RecordLease, ""} {
		c, ok := r.Counts[k]
		if !ok {
			continue
		}
		name := string(k)
		if k == "" {
			name = "unreadable"
		}
		fmt.Fprintf(bw, "%s: %d %screated, %d %supdated, %d unchanged, %d failed\n", name,
			c[store.ImportCreated], verb, c[store.ImportUpdated], verb, c[store.ImportUnchanged], c[store.ImportFailed])
	}
	return bw.Flush()
}
