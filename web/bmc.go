package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bootyard/bootyard/bmc"
	"github.com/bootyard/bootyard/httperr"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// Power is out-of-band power control (package bmc), when Bootyard has it.
type Power interface {
	Do(ctx context.Context, name string, req bmc.Request, source string) (bmc.Result, error)
	// Imported starts what a newly imported node with a BMC gets: boot once from the
	// network, power on. It returns at once; the outcome is an event.
	Imported(name, source string)
}

// PowerStates is the background poller's last word on each node's power.
type PowerStates interface {
	// Observation takes the node as the caller read it: a poller that does not poll it
	// (another replica does) shows the reading recorded in it.
	Observation(n node.Node) (bmc.Observation, bool)
}

// NodeSecrets stores what must never be in a node record (the BMC password). Both store
// backends implement it; it is asserted on the Inventory, like PasswordStore.
type NodeSecrets interface {
	SetNodeSecret(ctx context.Context, nodeName, key string, value []byte) error
}

// BMCInput is the BMC part of NodeInput. The password is write-only: no response,
// page or event ever carries it back; the node shows bmc.passwordSet instead.
type BMCInput struct {
	// BMC is ipmi://HOST[:PORT], redfish://HOST[:PORT] or redfish+http://HOST[:PORT];
	// "" removes the BMC (and its password).
	BMC         *string `json:"bmc,omitempty"`
	BMCUser     *string `json:"bmcUser,omitempty"`
	BMCPassword *string `json:"bmcPassword,omitempty"`
	BMCSystemID *string `json:"bmcSystemID,omitempty"`
	// BMCInsecureTLS skips the Redfish certificate check.
	BMCInsecureTLS *bool `json:"bmcInsecureTLS,omitempty"`
	// BMCKeepPowerOn leaves the machine on after a deletion's wipe.
	BMCKeepPowerOn *bool `json:"bmcKeepPowerOn,omitempty"`
}

func (in *BMCInput) given() bool {
	return in.BMC != nil || in.BMCUser != nil || in.BMCPassword != nil || in.BMCSystemID != nil ||
		in.BMCInsecureTLS != nil || in.BMCKeepPowerOn != nil
}

// apply sets n's BMC from the input; the password is only noted (PasswordSet), it is
// stored by savePassword after the node is written.
func (in *BMCInput) apply(n *node.Node) error {
	if !in.given() {
		return nil
	}
	if in.BMC != nil {
		if strings.TrimSpace(*in.BMC) == "" {
			n.BMC = nil
			if in.BMCUser != nil || (in.BMCPassword != nil && *in.BMCPassword != "") || in.BMCSystemID != nil {
				return badField("bmc", fmt.Errorf("%w: BMC user, password or system ID without a BMC address", node.ErrInvalid))
			}
			return nil
		}
		b, err := node.ParseBMCURL(*in.BMC)
		if err != nil {
			return badField("bmc", err)
		}
		if n.BMC != nil {
			// A new address keeps the other settings unless they are given too.
			b.User, b.SystemID, b.InsecureTLS, b.KeepPowerOn, b.PasswordSet = n.BMC.User, n.BMC.SystemID, n.BMC.InsecureTLS, n.BMC.KeepPowerOn, n.BMC.PasswordSet
			if b.Protocol != n.BMC.Protocol {
				b.SystemID, b.InsecureTLS = "", false
			}
		}
		n.BMC = &b
	}
	if n.BMC == nil {
		return badField("bmc", fmt.Errorf("%w: BMC settings without a BMC address (bmc: ipmi://HOST or redfish://HOST)", node.ErrInvalid))
	}
	if in.BMCUser != nil {
		n.BMC.User = *in.BMCUser
	}
	if in.BMCSystemID != nil {
		n.BMC.SystemID = *in.BMCSystemID
	}
	if in.BMCInsecureTLS != nil {
		n.BMC.InsecureTLS = *in.BMCInsecureTLS
	}
	if in.BMCKeepPowerOn != nil {
		n.BMC.KeepPowerOn = *in.BMCKeepPowerOn
	}
	if in.BMCPassword != nil {
		if strings.ContainsAny(*in.BMCPassword, "\n\r\x00") {
			return badField("bmcPassword", fmt.Errorf("%w: the BMC password must be one line", node.ErrInvalid))
		}
		n.BMC.PasswordSet = *in.BMCPassword != ""
	}
	if err := n.BMC.Validate(); err != nil {
		return badField("bmc", err)
	}
	return nil
}

// savePassword stores (or, with "" or a removed BMC, deletes) the node's BMC password.
func (s *Server) savePassword(ctx context.Context, n node.Node, in *BMCInput) error {
	var value []byte
	switch {
	case n.BMC == nil && in.BMC != nil:
		// The BMC was removed: its password goes with it.
	case in.BMCPassword != nil:
		value = []byte(*in.BMCPassword)
	default:
		return nil
	}
	secrets, ok := s.deps.Inventory.(NodeSecrets)
	if !ok {
		if value == nil {
			return nil
		}
		return fmt.Errorf("node %s: this store keeps no node secrets: %w", n.Name, node.ErrConflict)
	}
	if err := secrets.SetNodeSecret(ctx, n.Name, node.BMCPasswordKey, value); err != nil {
		return fmt.Errorf("node %s: store the BMC password: %w", n.Name, err)
	}
	return nil
}

// imported hands a new node with a BMC to the lifecycle: network boot, power on.
func (s *Server) imported(n node.Node, src string) {
	if s.deps.Power != nil && n.BMC != nil && n.State == node.StateRegistered {
		s.deps.Power.Imported(n.Name, src)
	}
}

// PowerInput is the body of POST /api/v1/nodes/<ref>/power.
type PowerInput struct {
	Action   string `json:"action"`
	BootOnce string `json:"bootOnce,omitempty"`
}

func (in PowerInput) parse() (bmc.Request, error) {
	a, err := bmc.ParseAction(in.Action)
	if err != nil {
		return bmc.Request{}, badField("action", err)
	}
	d, err := bmc.ParseBootDevice(in.BootOnce)
	if err != nil {
		return bmc.Request{}, badField("bootOnce", err)
	}
	return bmc.Request{Action: a, BootOnce: d}, nil
}

// PowerStatus is the answer of GET /api/v1/nodes/<ref>/power: the BMC asked now, and
// what the poller last saw.
type PowerStatus struct {
	bmc.Result
	Error    string           `json:"error,omitempty"`
	Observed *bmc.Observation `json:"observed,omitempty"`
}

// powerRoutes mounts the power API when out-of-band power is on.
func (s *Server) powerRoutes(api *echo.Group, admin echo.MiddlewareFunc) {
	if s.deps.Power == nil {
		return
	}
	api.GET("/nodes/:ref/power", s.powerStatus)
	api.POST("/nodes/:ref/power", s.powerAction, admin)
}

func (s *Server) powerAction(c echo.Context) error {
	p := s.deps.Power
	var in PowerInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	req, err := in.parse()
	if err != nil {
		return err
	}
	res, err := p.Do(c.Request().Context(), c.Param("ref"), req, source(c))
	if errors.Is(err, bmc.ErrBMCFailed) {
		// The BMC, not Bootyard, failed: a gateway error that says what it answered.
		return c.JSON(http.StatusBadGateway, httperr.Body{Error: err.Error()})
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, res)
}

func (s *Server) powerStatus(c echo.Context) error {
	res, err := s.deps.Power.Do(c.Request().Context(), c.Param("ref"), bmc.Request{Action: bmc.ActionStatus}, source(c))
	if err != nil && !errors.Is(err, bmc.ErrBMCFailed) {
		return err
	}
	out := PowerStatus{Result: res}
	if err != nil {
		out.Error = err.Error()
	}
	if s.deps.PowerStates != nil {
		if n, err := s.deps.Inventory.GetNode(c.Request().Context(), res.Node); err == nil {
			if o, ok := s.deps.PowerStates.Observation(n); ok {
				out.Observed = &o
			}
		}
	}
	return c.JSON(http.StatusOK, out)
}

func (u *ui) powerPageRoutes(g *echo.Group, page []echo.MiddlewareFunc) {
	if u.srv.deps.Power != nil {
		g.POST("/nodes/:ref/power", u.powerPage, page...)
	}
}

// powerPage runs a power button of the node page, then shows the node again.
func (u *ui) powerPage(c echo.Context) error {
	p := u.srv.deps.Power
	req, err := PowerInput{Action: c.FormValue("action"), BootOnce: c.FormValue("bootOnce")}.parse()
	if err != nil {
		return u.pageError(c, err)
	}
	if (req.Action == bmc.ActionOff || req.Action == bmc.ActionCycle) && c.FormValue("confirm") != "yes" {
		return u.pageError(c, fmt.Errorf("power %s: %w: confirm that the machine may lose power", req.Action, node.ErrInvalid))
	}
	res, err := p.Do(c.Request().Context(), c.Param("ref"), req, webSource)
	if err != nil {
		if errors.Is(err, bmc.ErrBMCFailed) {
			u.srv.log.Warn("power button", slog.String("node", c.Param("ref")), slog.Any("err", err))
			return u.render(c, http.StatusBadGateway, "message", messageView{pageView: u.page(c, "BMC error", "nodes"), Message: err.Error()})
		}
		return u.pageError(c, err)
	}
	return c.Redirect(http.StatusSeeOther, "/ui/nodes/"+res.Node)
}

// powerText is the nodes table's power cell: the poller's last word, or why there is none.
func (u *ui) powerText(n node.Node) string {
	if n.BMC == nil {
		return ""
	}
	if u.srv.deps.PowerStates == nil {
		return "—"
	}
	o, ok := u.srv.deps.PowerStates.Observation(n)
	if !ok {
		return string(bmc.PowerUnknown)
	}
	if o.Err != "" {
		return string(o.Power) + " (BMC not answering)"
	}
	return string(o.Power)
}

// Register adds a collector (the BMC poller's gauges and counters) to /metrics.
func (m *Metrics) Register(c prometheus.Collector) error { return m.reg.Register(c) }

// afterBulkImport stores the BMC passwords of the rows a committed bulk import created
// and hands their nodes to the power lifecycle. rows[j] came from lines[rowAt[j]] and
// results[j] is its outcome.
func (s *Server) afterBulkImport(ctx context.Context, lines []importLine, rows []store.ImportRow, rowAt []int, results []store.ImportResult, out *importOutcome) {
	for j, r := range results {
		if r.Outcome != store.ImportCreated || j >= len(rows) {
			continue
		}
		n := rows[j].Node
		n.Name, n.State = r.Name, node.StateRegistered
		in := lines[rowAt[j]].Input.BMCInput
		if err := s.savePassword(ctx, n, &in); err != nil {
			s.log.Warn("bulk import: store the BMC password", slog.String("node", n.Name), slog.Any("err", err))
			out.Errors = append(out.Errors, store.ImportResult{Line: r.Line, Name: n.Name, Outcome: store.ImportFailed, Error: err.Error()})
			continue
		}
		s.imported(n, "api")
	}
}

// powerRow is the node page's row, with the power cell filled in.
func (u *ui) powerRow(n node.Node) nodeRow {
	r := newNodeRow(n)
	r.Power = u.powerText(n)
	return r
}
