package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// nodeRow is one line of the nodes table (or of the discovered list).
type nodeRow struct {
	node.Node
	MACList  []string
	IPText   string
	Firmware string
	// Power is the BMC poller's word on the machine's power; empty without a BMC.
	Power string
	// Now is the render time the row's ages count from (the script ticks them on).
	Now time.Time
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

// inventoryView is the live part of the nodes page: one page of the table, where it sits
// in the whole, and the first discovered machines.
type inventoryView struct {
	Now             time.Time
	Nodes           []nodeRow
	Discovered      []nodeRow
	DiscoveredTotal int
	Filtered        bool
	Total           int // imported nodes in all
	Matched         int // nodes the view's filters match, on all pages
	From, To        int // 1-based positions of this page's rows among Matched
	Next, First     string
	SortName        string // the link of the Name and State column headers
	SortState       string
	View            nodesQuery
	Error           string // a search the page could not run (a bad selector)
	// HardwareSearch is the hardware text the discovered list is narrowed to (hw:).
	HardwareSearch string
	// NoNameMatch is a plain search no node name starts with, which the view then ran
	// as a hardware search (hw:) because the hardware matched.
	NoNameMatch string
}

type stateCount struct {
	State node.State
	Count int
	Link  string
}

type nodesView struct {
	pageView
	Role, State string
	States      []node.State
	Counts      []stateCount
	Inventory   inventoryView
	Import      importForm
	ShowImport  bool
	Imported    *joinView
	StreamURL   string
}

// importForm is the import dialog's fields as typed, and the errors to show beside them.
type importForm struct {
	Role, MAC, Name, IP, Gateway, DNS, Labels, Taints, Image, Disk string
	RootDiskHints, UEFILoader                                      string
	BMC, BMCUser                                                   string
	// bmcPassword is never rendered back into the form (unexported: the template cannot).
	bmcPassword string
	Errors      map[string]string
	General     string
}

// Advanced reports whether the advanced section should start open: it holds a value or
// an error the operator must see.
func (f importForm) Advanced() bool {
	if f.Name != "" || f.IP != "" || f.Gateway != "" || f.DNS != "" || f.Labels != "" || f.Taints != "" || f.Image != "" || f.Disk != "" || f.BMC != "" ||
		f.RootDiskHints != "" || f.UEFILoader != "" {
		return true
	}
	for k := range f.Errors {
		if k != "mac" && k != "role" {
			return true
		}
	}
	return false
}

// discoveredOnPage bounds the discovered list: a flood of unknown machines must not make
// the page big.
const discoveredOnPage = 20

// nodesQuery is the view the URL holds: search, filters, order, page size and position.
type nodesQuery struct {
	Q, Role, State, Sort string
	Limit                int
	Continue             string
	From                 int
}

func viewFromURL(v url.Values) nodesQuery {
	q := nodesQuery{Q: strings.TrimSpace(v.Get("q")), Role: v.Get("role"), State: v.Get("state"), Sort: v.Get("sort"), Continue: v.Get("continue")}
	q.Limit, _ = strconv.Atoi(v.Get("limit"))
	q.From, _ = strconv.Atoi(v.Get("from"))
	if q.From < 1 {
		q.From = 1
	}
	return q
}

// Encode is the view as a query string, for the bulk form to come back to it.
func (q nodesQuery) Encode() string { return q.values().Encode() }

// values is the view as a query string; empty fields are left out so URLs stay short.
func (q nodesQuery) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"q": q.Q, "role": q.Role, "state": q.State, "sort": q.Sort, "continue": q.Continue} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.From > 1 {
		v.Set("from", strconv.Itoa(q.From))
	}
	return v
}

func (q nodesQuery) url(path string) string {
	if e := q.values().Encode(); e != "" {
		return path + "?" + e
	}
	return path
}

// hardwarePrefix starts a search of the inspected hardware in the search box.
const hardwarePrefix = "hw:"

// storeQuery turns the view into a store query. The search box takes a MAC, an IP, a
// label selector (anything with =, ! or " in "), "hw:" and hardware text, or else a name
// prefix. All but hardware are index lookups, so searching 100,000 nodes costs what
// paging them does; a hardware search reads the document of every node the role and
// state filters leave.
func (q nodesQuery) storeQuery() (store.NodeQuery, error) {
	v := url.Values{"role": {q.Role}, "state": {q.State}, "sort": {q.Sort}, "continue": {q.Continue}}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	switch s := q.Q; {
	case s == "":
	case q.hardwareText() != "":
		v.Set("hardware", q.hardwareText())
	case isMAC(s):
		v.Set("mac", s)
	case isIP(s):
		v.Set("ip", s)
	case strings.ContainsAny(s, "=!") || strings.Contains(s, " in ") || strings.Contains(s, " notin "):
		v.Set("labelSelector", s)
	default:
		v.Set("name", s)
	}
	sq, err := parseNodeQuery(v)
	if err == nil && q.State == "" {
		sq.NotState = node.StateDiscovered
	}
	return sq, err
}

// hardwareText is the text of a hardware search ("hw:poweredge"), else "".
func (q nodesQuery) hardwareText() string {
	if len(q.Q) < len(hardwarePrefix) || !strings.EqualFold(q.Q[:len(hardwarePrefix)], hardwarePrefix) {
		return ""
	}
	return strings.TrimSpace(q.Q[len(hardwarePrefix):])
}

// isNamePrefix reports whether the view's search is read as a name prefix.
func (q nodesQuery) isNamePrefix() bool {
	sq, err := q.storeQuery()
	return err == nil && sq.NamePrefix != "" && q.hardwareText() == ""
}

func isMAC(s string) bool {
	_, err := node.ParseMAC(s)
	return err == nil && strings.ContainsAny(s, ":-.")
}
func isIP(s string) bool { _, err := parseAddrOrPrefix(s); return err == nil }

// inventory runs the view. With orHardware, a plain search no node name starts with is
// run as a hardware search when that finds something; the page asks for that, its live
// stream does not: a stream keeps the page's rows, and would otherwise read every node's
// document on each tick of a search that finds nothing.
func (u *ui) inventory(ctx context.Context, view nodesQuery, orHardware bool) (inventoryView, error) {
	v := inventoryView{Now: u.now(), View: view, Filtered: view.Q != "" || view.Role != "" || view.State != ""}
	counts, err := u.inv.StateCounts(ctx)
	if err != nil {
		return inventoryView{}, err
	}
	for st, c := range counts {
		if st != node.StateDiscovered {
			v.Total += c
		}
	}
	q, err := view.storeQuery()
	var page store.NodePage
	if err == nil {
		page, err = u.inv.QueryNodes(ctx, q)
	}
	if err != nil {
		if statusOf(err) >= 500 {
			return inventoryView{}, err
		}
		// A search that does not parse shows why, beside an empty table.
		_, v.Error = formError(err)
	}
	if err == nil && orHardware && len(page.Nodes) == 0 && view.Continue == "" && view.isNamePrefix() {
		// No name starts with it: people type a model or a serial into a search box
		// too, so a hardware match is shown instead, and the view becomes hw:, which
		// its links, stream and bulk scope then keep.
		hw := view
		hw.Q = hardwarePrefix + view.Q
		hpage, disc, err := u.hardwareSearch(ctx, hw)
		if err != nil {
			return inventoryView{}, err
		}
		if hpage.Total > 0 || disc.Total > 0 {
			v.NoNameMatch, view, v.View, page = view.Q, hw, hw, hpage
		}
	}
	for _, n := range page.Nodes {
		r := newNodeRow(n)
		r.Now = v.Now
		r.Power = u.powerText(n)
		v.Nodes = append(v.Nodes, r)
	}
	v.Matched = page.Total
	if len(v.Nodes) > 0 {
		v.From, v.To = view.From, view.From+len(v.Nodes)-1
	}
	if page.Continue != "" {
		next := view
		next.Continue, next.From = page.Continue, view.From+len(v.Nodes)
		v.Next = next.url("/ui/nodes")
	}
	if view.Continue != "" {
		first := view
		first.Continue, first.From = "", 0
		v.First = first.url("/ui/nodes")
	}
	for _, sort := range []struct {
		dst  *string
		name string
	}{{&v.SortName, "name"}, {&v.SortState, "state"}} {
		s := view
		s.Continue, s.From, s.Sort = "", 0, sort.name
		if view.Sort == sort.name || (sort.name == "name" && view.Sort == "") {
			s.Sort = "-" + sort.name
		}
		*sort.dst = s.url("/ui/nodes")
	}
	disc, err := u.discovered(ctx, view)
	if err != nil {
		return inventoryView{}, err
	}
	v.HardwareSearch = view.hardwareText()
	v.DiscoveredTotal = disc.Total
	for _, n := range disc.Nodes {
		r := newNodeRow(n)
		r.Now = v.Now
		v.Discovered = append(v.Discovered, r)
	}
	return v, nil
}

// hardwareSearch runs a hw: view over the imported nodes and the discovered machines.
func (u *ui) hardwareSearch(ctx context.Context, view nodesQuery) (nodes, discovered store.NodePage, err error) {
	q, err := view.storeQuery()
	if err != nil {
		return nodes, discovered, err
	}
	if nodes, err = u.inv.QueryNodes(ctx, q); err != nil {
		return nodes, discovered, err
	}
	discovered, err = u.discovered(ctx, view)
	return nodes, discovered, err
}

// discovered is the first page of discovered machines; a hardware search narrows it too,
// since telling machines apart before import is what an inspection is for.
func (u *ui) discovered(ctx context.Context, view nodesQuery) (store.NodePage, error) {
	return u.inv.QueryNodes(ctx, store.NodeQuery{State: node.StateDiscovered, Limit: discoveredOnPage,
		Hardware: node.HardwareFilter{Text: view.hardwareText()}})
}

// stateCounts are the links at the top of the page: how many nodes in each state.
func stateCountsView(counts map[node.State]int, view nodesQuery) []stateCount {
	var out []stateCount
	for _, st := range node.States {
		if st == node.StateDiscovered {
			continue
		}
		v := view
		v.State, v.Continue, v.From = string(st), "", 0
		out = append(out, stateCount{State: st, Count: counts[st], Link: v.url("/ui/nodes")})
	}
	return out
}

func (u *ui) nodesPage(c echo.Context) error {
	f := importForm{Role: string(node.RoleWorker), MAC: c.QueryParam("mac")}
	return u.renderNodes(c, http.StatusOK, f, c.QueryParam("import") != "")
}

func (u *ui) renderNodes(c echo.Context, status int, f importForm, showImport bool) error {
	ctx := c.Request().Context()
	view := viewFromURL(c.QueryParams())
	inv, err := u.inventory(ctx, view, true)
	if err != nil {
		return err
	}
	view = inv.View // a name search the page ran as a hardware search stays one
	if inv.Error != "" && status == http.StatusOK {
		status = http.StatusUnprocessableEntity
	}
	counts, err := u.inv.StateCounts(ctx)
	if err != nil {
		return err
	}
	v := nodesView{
		pageView:   u.page(c, "Nodes", "nodes"),
		Role:       view.Role,
		State:      view.State,
		Counts:     stateCountsView(counts, view),
		Inventory:  inv,
		Import:     f,
		ShowImport: showImport,
	}
	stream := view.values()
	stream.Set("v", membersKey(inv))
	stream.Set("r", rowsKey(inv.Nodes))
	ck, err := changeKey(counts)
	if err != nil {
		return err
	}
	stream.Set("c", ck)
	v.StreamURL = "/ui/nodes/stream?" + stream.Encode()
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
	if msg := c.QueryParam("bulk"); msg != "" {
		v.Flash = msg
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
		BMC:     strings.TrimSpace(c.FormValue("bmc")),
		BMCUser: strings.TrimSpace(c.FormValue("bmc_user")),

		RootDiskHints: strings.TrimSpace(c.FormValue("root_disk_hints")),
		UEFILoader:    strings.TrimSpace(c.FormValue("uefi_loader")),

		bmcPassword: c.FormValue("bmc_password"),
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
	}{{&in.Name, f.Name}, {&in.IP, f.IP}, {&in.Gateway, f.Gateway}, {&in.Image, f.Image}, {&in.Disk, f.Disk},
		{&in.RootDiskHints, f.RootDiskHints}, {&in.UEFILoader, f.UEFILoader}, {&in.BMC, f.BMC}, {&in.BMCUser, f.BMCUser}, {&in.BMCPassword, f.bmcPassword}} {
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
	if err == nil {
		if err = u.srv.savePassword(ctx, n, &in.BMCInput); err == nil {
			u.srv.imported(n, webSource)
		}
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
