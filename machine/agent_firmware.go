package machine

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/bootyard/bootyard/agentapi"
	"github.com/bootyard/bootyard/node"
)

// firmware stores what the agent read from the firmware on the node: whether it booted
// with Secure Boot on is what an operator who requires it checks on the node page.
func (a *Agent) firmware(c echo.Context) error {
	ac := call(c)
	var in agentapi.FirmwareReport
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	var sb *bool
	what := "firmware: BIOS (no UEFI, so no Secure Boot)"
	if in.UEFI {
		on := in.SecureBoot
		sb = &on
		what = "firmware: UEFI, Secure Boot off"
		if on {
			what = "firmware: UEFI, Secure Boot on"
		}
	}
	now := time.Now().UTC()
	_, err := a.inv.UpdateNode(c.Request().Context(), ac.node.Name, func(n *node.Node) ([]node.Event, error) {
		n.SecureBoot = sb
		return []node.Event{node.NewEvent(n.Name, node.EventProgress, what, "agent", now)}, nil
	})
	if err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
