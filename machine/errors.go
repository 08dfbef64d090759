package machine

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

// errorBody is the JSON body of a refused agent call.
type errorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// fieldError ties a validation error to a field of the machine's report.
type fieldError struct {
	field string
	err   error
}

func (e *fieldError) Error() string { return e.err.Error() }
func (e *fieldError) Unwrap() error { return e.err }

func badField(field string, err error) error { return &fieldError{field: field, err: err} }

var errBadRequest = errors.New("bad request")

// statusOf is the one place the machine endpoints turn error kinds into HTTP statuses.
func statusOf(err error) int {
	var he *echo.HTTPError
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &he):
		return he.Code
	case errors.As(err, &syn), errors.As(err, &typ), errors.Is(err, errBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, node.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, node.ErrConflict), errors.Is(err, node.ErrIllegalTransition), errors.Is(err, node.ErrRefused):
		return http.StatusConflict
	case errors.Is(err, node.ErrInvalid):
		return http.StatusUnprocessableEntity
	case errors.Is(err, node.ErrForbidden):
		return http.StatusForbidden
	}
	return http.StatusInternalServerError
}

// errorHandler answers a failed agent call with {"error": ..., "field": ...}.
func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		code := statusOf(err)
		body := errorBody{Error: err.Error()}
		var he *echo.HTTPError
		if errors.As(err, &he) {
			body.Error = http.StatusText(he.Code)
			if m, ok := he.Message.(string); ok {
				body.Error = m
			}
		}
		var fe *fieldError
		if errors.As(err, &fe) {
			body.Field = fe.field
		}
		if code >= 500 {
			log.Error("machine request failed", slog.String("path", c.Path()), slog.Any("err", err))
			body.Error = "internal error: " + err.Error()
		}
		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(code)
			return
		}
		_ = c.JSON(code, body)
	}
}

// decodeJSON reads a machine's JSON report strictly: an unknown field is an error, so a
// mismatch between agent and server shows up instead of being silently ignored.
func decodeJSON(c echo.Context, v any) error {
	dec := json.NewDecoder(c.Request().Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var he *echo.HTTPError
		var mbe *http.MaxBytesError
		if errors.As(err, &he) || errors.As(err, &mbe) {
			return echo.NewHTTPError(http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", maxAgentBody))
		}
		if err == io.EOF {
			return fmt.Errorf("%w: empty body, want a JSON object", errBadRequest)
		}
		return fmt.Errorf("%w: body is not valid JSON for this call: %v", errBadRequest, err)
	}
	return nil
}
