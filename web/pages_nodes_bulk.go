package web

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// bulkPageRoutes mounts the nodes page's bulk forms. The CSV import takes a file far over
// the pages' 1 MiB body limit, so it has its own.
func (u *ui) bulkPageRoutes(g *echo.Group, page []echo.MiddlewareFunc) {
	g.POST("/nodes/bulk", u.bulkAction, page...)
	big := []echo.MiddlewareFunc{pageHeaders, middleware.BodyLimit(strconv.Itoa(maxImportBody)), u.requireSession, u.requireCSRF}
	g.POST("/nodes/import-csv", u.importCSV, big...)
}

// previewRows is how many of the rows to import the preview lists.
const previewRows = 20

type importPreviewView struct {
	pageView
	Report ImportReport
	Rows   []store.ImportResult // the first rows that would be imported
	More   int
	CSV    string
	File   string
	// Done is set once the import was committed (with continue-on-error and failures).
	Done bool
}

// importCSV previews an uploaded CSV (a dry run: every row checked, nothing written) and,
// when the preview's form comes back with commit, imports it. The file travels back in
// the preview's form, so the server keeps nothing between the two requests.
func (u *ui) importCSV(c echo.Context) error {
	ctx := c.Request().Context()
	var text, file string
	if fh, err := c.FormFile("file"); err == nil {
		f, err := fh.Open()
		if err != nil {
			return err
		}
		b, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			return err
		}
		text, file = string(b), fh.Filename
	} else {
		text, file = c.FormValue("csv"), c.FormValue("filename")
	}
	commit := c.FormValue("commit") != ""
	opts := store.ImportOptions{ContinueOnError: c.FormValue("continueOnError") != "", DryRun: !commit, Source: webSource}
	v := importPreviewView{pageView: u.page(c, "Import "+file, "nodes"), CSV: text, File: file}
	lines, err := parseImportCSV(strings.NewReader(text))
	if err != nil {
		v.Report.Error = err.Error()
		return u.render(c, http.StatusUnprocessableEntity, "import_preview", v)
	}
	out, err := u.srv.runImport(ctx, lines, opts)
	if err != nil {
		return err
	}
	v.Report = out.ImportReport
	if commit && out.Committed {
		msg := fmt.Sprintf("Imported %s: %d created, %d unchanged", file, out.Created, out.Unchanged)
		if out.Failed > 0 {
			msg += fmt.Sprintf(", %d failed", out.Failed)
		}
		return c.Redirect(http.StatusSeeOther, "/ui/nodes?"+url.Values{"bulk": {msg}}.Encode())
	}
	for _, r := range out.results {
		if r.Outcome == store.ImportCreated || r.Outcome == store.ImportUnchanged || r.Outcome == store.ImportSkipped {
			if len(v.Rows) < previewRows {
				v.Rows = append(v.Rows, r)
			} else {
				v.More++
			}
		}
	}
	status := http.StatusOK
	if commit {
		status = out.status
	}
	return u.render(c, status, "import_preview", v)
}

// bulkAction applies the bulk form: to the checked rows, or to every node the page's
// view matches (all pages). A delete needs the count typed.
func (u *ui) bulkAction(c echo.Context) error {
	ctx := c.Request().Context()
	viewQuery, _ := url.ParseQuery(c.FormValue("view"))
	view := viewFromURL(viewQuery)
	view.Continue, view.From = "", 0
	back := func(msg string) error {
		v := view.values()
		v.Set("bulk", msg)
		return c.Redirect(http.StatusSeeOther, "/ui/nodes?"+v.Encode())
	}
	in := BulkInput{Action: c.FormValue("action")}
	value := strings.TrimSpace(c.FormValue("value"))
	switch in.Action {
	case "set-image":
		in.Image = &value
	case "set-labels":
		in.Labels = map[string]string{}
		for _, item := range splitCell(value) {
			if k, ok := strings.CutSuffix(item, "-"); ok && !strings.Contains(item, "=") {
				in.RemoveLabels = append(in.RemoveLabels, k)
				continue
			}
			k, v, err := node.ParseLabel(item)
			if err != nil {
				return back("Nothing changed: " + err.Error())
			}
			in.Labels[k] = v
		}
	}
	if s := strings.TrimSpace(c.FormValue("confirm")); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return back("Nothing changed: type the number of nodes to delete, in digits")
		}
		in.Confirm = &n
	}
	var names []string
	if c.FormValue("scope") == "matching" {
		q, err := view.storeQuery()
		if err == nil {
			names, err = u.srv.namesMatching(ctx, q)
		}
		if err != nil {
			return back("Nothing changed: " + err.Error())
		}
	} else {
		form, err := c.FormParams()
		if err != nil {
			return err
		}
		names = form["names"]
	}
	rep, err := u.srv.applyBulk(ctx, in, names, webSource)
	if err != nil {
		if statusOf(err) >= 500 {
			return err
		}
		return back("Nothing changed: " + err.Error())
	}
	var msg bytes.Buffer
	fmt.Fprintf(&msg, "%s: %d of %d nodes done", in.Action, rep.Succeeded, rep.Matched)
	for i, e := range rep.Errors {
		if i == 3 {
			fmt.Fprintf(&msg, "; and %d more failed", len(rep.Errors)-3)
			break
		}
		fmt.Fprintf(&msg, "; %s: %s", e.Name, e.Error)
	}
	return back(msg.String())
}
