// Package httperr is the one place error kinds become HTTP statuses and JSON error
// bodies, shared by the operator's API (web) and the machine endpoints (machine).
package httperr

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/bootyard/bootyard/node"
)

// Body is the body of every error response.
type Body struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"` // the input field at fault, for inline form errors
}

// FieldError ties a validation error to an input field.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// BadField marks err as the fault of the named input field.
func BadField(field string, err error) error { return &FieldError{Field: field, Err: err} }

// ErrBadRequest is malformed input: not JSON, the wrong shape, empty.
var ErrBadRequest = errors.New("bad request")

// Status is the one place error kinds become HTTP statuses.
func Status(err error) int {
	var he *echo.HTTPError
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &he):
		return he.Code
	case errors.As(err, &syn), errors.As(err, &typ), errors.Is(err, ErrBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, node.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, node.ErrConflict), errors.Is(err, node.ErrIllegalTransition), errors.Is(err, node.ErrRefused):
		return http.StatusConflict
	case errors.Is(err, node.ErrInvalid):
		return http.StatusUnprocessableEntity
	case errors.Is(err, node.ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, node.ErrUnavailable):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// Handler answers a failed request with Body and Status's code; 5xx are logged.
func Handler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		code := Status(err)
		body := Body{Error: err.Error()}
		var he *echo.HTTPError
		if errors.As(err, &he) {
			body.Error = http.StatusText(he.Code)
			if m, ok := he.Message.(string); ok {
				body.Error = m
			}
		}
		var fe *FieldError
		if errors.As(err, &fe) {
			body.Field = fe.Field
		}
		switch {
		case code == http.StatusServiceUnavailable:
			// Nothing broke here: what keeps the inventory is out of reach for now.
			log.Warn("request failed", slog.String("path", c.Path()), slog.Any("err", err))
			c.Response().Header().Set("Retry-After", "5")
		case code >= 500:
			log.Error("request failed", slog.String("path", c.Path()), slog.Any("err", err))
			body.Error = "internal error: " + err.Error()
		}
		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(code)
			return
		}
		_ = c.JSON(code, body)
	}
}

// DecodeJSON reads a JSON body strictly: unknown fields are an error, so a typo in a
// field name (or a client and server that disagree) is reported instead of silently
// ignored. limit is the body limit the route enforces, for the 413's message.
func DecodeJSON(c echo.Context, v any, limit int) error {
	dec := json.NewDecoder(c.Request().Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var he *echo.HTTPError
		var mbe *http.MaxBytesError
		if errors.As(err, &he) || errors.As(err, &mbe) {
			return echo.NewHTTPError(http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", limit))
		}
		if err == io.EOF {
			return fmt.Errorf("%w: empty body, want a JSON object", ErrBadRequest)
		}
		return fmt.Errorf("%w: body is not valid JSON for this call: %v", ErrBadRequest, err)
	}
	return nil
}
