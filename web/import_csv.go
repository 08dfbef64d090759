package web

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/bootyard/bootyard/node"
)

// importColumns are the CSV columns a bulk import understands, in the documented order.
// A file may carry any subset that includes mac and role, in any order.
var importColumns = []string{"mac", "name", "role", "ip", "gateway", "dns", "labels", "taints", "image", "root_disk_hints", "bmc", "bmc_user", "bmc_password"}

// importLine is one row of a bulk import as parsed at the edge: the NodeInput it means,
// or why it means nothing.
type importLine struct {
	Line  int
	Input NodeInput
	Err   error
}

// maxImportRows bounds one import; a bigger inventory imports in several files.
const maxImportRows = 200_000

// parseImportCSV reads a spreadsheet export: a header line naming the columns, then one
// node per line. Cells holding several values (MACs, DNS servers, labels, taints) separate
// them with ";" or spaces (or "," inside a quoted cell). Blank lines and lines starting
// with # are skipped. A problem with the header or the file's shape is the returned
// error; a problem with one row is that row's Err, with its line number, so every row's
// error can be reported at once.
func parseImportCSV(r io.Reader) ([]importLine, error) {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.TrimLeadingSpace = true
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: empty CSV: want a header line (%s) and one node per line", node.ErrInvalid, strings.Join(importColumns, ","))
	}
	if err != nil {
		return nil, fmt.Errorf("%w: CSV header: %v", node.ErrInvalid, err)
	}
	col := make(map[string]int, len(header))
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))) // spreadsheets add a BOM
		if !slices.Contains(importColumns, h) {
			return nil, fmt.Errorf("%w: CSV header: unknown column %q (want %s)", node.ErrInvalid, h, strings.Join(importColumns, ","))
		}
		if _, dup := col[h]; dup {
			return nil, fmt.Errorf("%w: CSV header: column %q twice", node.ErrInvalid, h)
		}
		col[h] = i
	}
	for _, need := range []string{"mac", "role"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("%w: CSV header: the %s column is required", node.ErrInvalid, need)
		}
	}
	var out []importLine
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) && !errors.Is(pe.Err, csv.ErrFieldCount) {
			// A broken quote leaves the reader lost: report where and stop.
			return nil, fmt.Errorf("%w: CSV line %d: %v", node.ErrInvalid, pe.Line, pe.Err)
		}
		if err != nil && !errors.As(err, &pe) {
			return nil, fmt.Errorf("read CSV: %w", err) // the body, not its content: a 413 or a dropped connection
		}
		line, _ := cr.FieldPos(0)
		if len(out) == maxImportRows {
			return nil, fmt.Errorf("%w: more than %d rows: split the file", node.ErrInvalid, maxImportRows)
		}
		if err != nil {
			out = append(out, importLine{Line: line, Err: fmt.Errorf("%w: %d cells, the header has %d", node.ErrInvalid, len(rec), len(header))})
			continue
		}
		out = append(out, csvRow(line, rec, col))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: the CSV has a header and no rows", node.ErrInvalid)
	}
	return out, nil
}

// csvRow maps one record onto a NodeInput; NodeInput.apply validates it later, exactly as
// it validates a JSON import.
func csvRow(line int, rec []string, col map[string]int) importLine {
	cell := func(name string) (string, bool) {
		i, ok := col[name]
		if !ok {
			return "", false
		}
		return strings.TrimSpace(rec[i]), true
	}
	optional := func(name string) *string {
		if v, ok := cell(name); ok && v != "" {
			return &v
		}
		return nil
	}
	macs, _ := cell("mac")
	in := NodeInput{MACs: splitCell(macs), Name: optional("name"), IP: optional("ip"), Gateway: optional("gateway"), Image: optional("image"),
		RootDiskHints: optional("root_disk_hints")}
	role, _ := cell("role")
	in.Role = &role
	if v, _ := cell("dns"); v != "" {
		in.DNS = splitCell(v)
	}
	if v, _ := cell("labels"); v != "" {
		in.Labels = map[string]string{}
		for _, l := range splitCell(v) {
			k, val, err := node.ParseLabel(l)
			if err != nil {
				return importLine{Line: line, Err: badField("labels", err)}
			}
			in.Labels[k] = val
		}
	}
	if v, _ := cell("taints"); v != "" {
		in.Taints = splitCell(v)
	}
	in.BMC, in.BMCUser, in.BMCPassword = optional("bmc"), optional("bmc_user"), optional("bmc_password")
	return importLine{Line: line, Input: in}
}

// splitCell splits a cell holding several values.
func splitCell(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' })
}
