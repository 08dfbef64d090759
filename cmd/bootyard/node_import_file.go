package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bootyard/bootyard/web"
)

type bulkImportFlags struct {
	continueOnError, dryRun bool
}

// importFile sends a whole file to POST /api/v1/bulk/import and prints what happened to
// it, every failed row with its line number. A refused import exits non-zero.
func importFile(cmd *cobra.Command, cl *clientFlags, file string, flags bulkImportFlags, output string) error {
	var rd io.Reader = cmd.InOrStdin()
	contentType := "text/csv"
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		defer f.Close()
		rd = f
		if strings.HasSuffix(strings.ToLower(file), ".json") {
			contentType = "application/json"
		}
	}
	q := url.Values{"continueOnError": {strconv.FormatBool(flags.continueOnError)}, "dryRun": {strconv.FormatBool(flags.dryRun)}}
	resp, err := cl.exchange(cmd.Context(), "POST", "/api/v1/bulk/import?"+q.Encode(), contentType, rd)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	var rep web.ImportReport
	if err := json.Unmarshal(body, &rep); err != nil {
		return fmt.Errorf("import %s: HTTP %d: %s", file, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	if output == "json" {
		if err := writeJSON(cmd.OutOrStdout(), rep); err != nil {
			return err
		}
	} else {
		w := cmd.OutOrStdout()
		for _, e := range rep.Errors {
			fmt.Fprintf(w, "line %d: %s\n", e.Line, e.Error)
		}
		verb := "imported"
		switch {
		case rep.DryRun:
			verb = "would import"
		case !rep.Committed:
			verb = "imported nothing of"
		}
		fmt.Fprintf(w, "%s %s: %d created, %d unchanged, %d failed, %d skipped\n", verb, file, rep.Created, rep.Unchanged, rep.Failed, rep.Skipped)
	}
	if resp.StatusCode/100 != 2 {
		if rep.Error == "" {
			rep.Error = strings.TrimSpace(string(body))
		}
		return fmt.Errorf("%s (HTTP %d)", rep.Error, resp.StatusCode)
	}
	if rep.Failed > 0 {
		return fmt.Errorf("%d rows failed", rep.Failed)
	}
	return nil
}
