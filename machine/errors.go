package machine

import (
	"github.com/labstack/echo/v4"

	"github.com/bootyard/bootyard/httperr"
)

// statusOf is where the machine endpoints' error kinds become HTTP statuses (httperr,
// shared with the operator's API).
func statusOf(err error) int { return httperr.Status(err) }

func badField(field string, err error) error { return httperr.BadField(field, err) }

// decodeJSON reads a machine's JSON report strictly: an unknown field is an error, so a
// mismatch between agent and server shows up instead of being silently ignored.
func decodeJSON(c echo.Context, v any) error { return httperr.DecodeJSON(c, v, maxAgentBody) }
