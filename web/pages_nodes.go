package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/bootyard/bootyard/node"
)

// nodeRow is one line of the nodes table (or of the discovered list).
type nodeRow struct {
	node.Node
	MACList  []string
	IPText   string
	Firmware string
}

func newNodeRow(n node.Node) nodeRow {
	r := nodeRow{Node: n, IPText: n.Boot.IP, Firmware: n.Boot.Firmware}
	for _, m := range n.MACs {
		r.MACList = append(r.MACList, m.String())
	}
	if n.IP.IsValid() {
		r.IPText = n.IP.String()
	}
	if r.Firmware == "" {
		r.Firmware = "unknown"
	}
	return r
}

// inventoryView is the live part of the nodes page: the table and the discovered list.
type inventoryView struct {
	Now        time.Time
	Nodes      []nodeRow
	Discovered []nodeRow
	Filtered   bool
	Total      int
}

type nodesView struct {
	pageView
	Role, State string
	States      []node.State
	Inventory   inventoryView
	Import      importForm
	ShowImport  bool
	Imported    *joinView
	StreamURL   string
}

// importForm is the import dialog's fields as typed, and the errors to show beside them.
type importForm struct {
	Role, MAC, Name, IP, Gateway, DNS, Labels, Taints, Image, Disk string
	Errors                                                         map[string]string
	General                                                        string
}

// Advanced reports whether the advanced section should start open: it holds a value or
// an error the operator must see.
func (f importForm) Advanced() bool {
	if f.Name != "" || f.IP != "" || f.Gateway != "" || f.DNS != "" || f.Labels != "" || f.Taints != "" || f.Image != "" || f.Disk != "" {
		return true
	}
	for k := range f.Errors {
		if k != "mac" && k != "role" {
			return true
		}
	}
	return false
}

func (u *ui) inventory(ctx context.Context, role, state string) (inventoryView, error) {
	nodes, err := u.inv.ListNodes(ctx)
	if err != nil {
		return inventoryView{}, err
	}
	v := inventoryView{Now: u.now(), Filtered: role != "" || state != ""}
	for _, n := range nodes {
		if n.State == node.StateDiscovered {
			v.Discovered = append(v.Discovered, newNodeRow(n))
			continue
		}
		v.Total++
		if (role == "" || string(n.Role) == role) && (state == "" || string(n.State) == state) {
			v.Nodes = append(v.Nodes, newNodeRow(n))
		}
	}
	return v, nil
}

func (u *ui) nodesPage(c echo.Context) error {
	f := importForm{Role: string(node.RoleWorker), MAC: c.QueryParam("mac")}
	return u.renderNodes(c, http.StatusOK, f, c.QueryParam("import") != "")
}

func (u *ui) renderNodes(c echo.Context, status int, f importForm, showImport bool) error {
	ctx := c.Request().Context()
	role, state := c.QueryParam("role"), c.QueryParam("state")
	inv, err := u.inventory(ctx, role, state)
	if err != nil {
		return err
	}
	v := nodesView{
		pageView:   u.page(c, "Nodes", "nodes"),
		Role:       role,
		State:      state,
		Inventory:  inv,
		Import:     f,
		ShowImport: showImport,
		StreamURL:  "/ui/nodes/stream?" + url.Values{"role": {role}, "state": {state}}.Encode(),
	}
	for _, s := range node.States {
		if s != node.StateDiscovered {
			v.States = append(v.States, s)
		}
	}
	if name := c.QueryParam("imported"); name != "" && status == http.StatusOK {
		if n, err := u.inv.GetNode(ctx, name); err == nil {
			jv := u.joinView(ctx, n)
			jv.CSRF = v.CSRF
			v.Imported = &jv
		}
	}
	if name := c.QueryParam("removed"); name != "" {
		v.Flash = fmt.Sprintf("Node %s was removed: it never started installing, so there was nothing to wipe.", name)
	}
	return u.render(c, status, "nodes", v)
}

func formImport(c echo.Context) importForm {
	return importForm{
		Role:    c.FormValue("role"),
		MAC:     strings.TrimSpace(c.FormValue("mac")),
		Name:    strings.TrimSpace(c.FormValue("name")),
		IP:      strings.TrimSpace(c.FormValue("ip")),
		Gateway: strings.TrimSpace(c.FormValue("gateway")),
		DNS:     strings.TrimSpace(c.FormValue("dns")),
		Labels:  strings.TrimSpace(c.FormValue("labels")),
		Taints:  strings.TrimSpace(c.FormValue("taints")),
		Image:   strings.TrimSpace(c.FormValue("image")),
		Disk:    strings.TrimSpace(c.FormValue("disk")),
	}
}

// splitList splits a field that holds several values, one per line or separated by
// commas or spaces, as operators paste them.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' || r == ' ' || r == '\t' })
}

// input turns the form into the API's NodeInput, so NodeInput.apply parses and validates
// it exactly as it does a JSON import, with the same messages and fields.
func (f importForm) input() (NodeInput, error) {
	in := NodeInput{MACs: splitList(f.MAC), Role: &f.Role, DNS: splitList(f.DNS)}
	for _, p := range []struct {
		dst **string
		v   string
	}{{&in.Name, f.Name}, {&in.IP, f.IP}, {&in.Gateway, f.Gateway}, {&in.Image, f.Image}, {&in.Disk, f.Disk}} {
		if p.v != "" {
			v := p.v
			*p.dst = &v
		}
	}
	if f.Labels != "" {
		in.Labels = map[string]string{}
		for _, l := range splitList(f.Labels) {
			k, v, err := node.ParseLabel(l)
			if err != nil {
				return NodeInput{}, badField("labels", err)
			}
			in.Labels[k] = v
		}
	}
	if f.Taints != "" {
		in.Taints = splitList(f.Taints)
	}
	return in, nil
}

// formError puts err beside its field, or at the top of the form.
func formError(err error) (field, msg string) {
	var fe *fieldError
	if errors.As(err, &fe) && fe.Field != "" {
		return fe.Field, fe.Err.Error()
	}
	return "", err.Error()
}

func (u *ui) importNode(c echo.Context) error {
	ctx := c.Request().Context()
	f := formImport(c)
	in, err := f.input()
	var n node.Node
	if err == nil {
		err = in.apply(&n, true)
	}
	if err == nil {
		n, err = u.inv.ImportNode(ctx, n, webSource)
	}
	if err != nil {
		status := statusOf(err)
		if status >= 500 {
			return err
		}
		field, msg := formError(err)
		f.Errors = map[string]string{}
		if field != "" {
			f.Errors[field] = msg
		} else {
			f.General = msg
		}
		return u.renderNodes(c, status, f, true)
	}
	u.srv.log.Info("node imported", slog.String("node", n.Name), slog.String("role", string(n.Role)), slog.String("source", webSource))
	return c.Redirect(http.StatusSeeOther, "/ui/nodes?imported="+n.Name)
}
