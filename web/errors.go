package web

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/bootyard/bootyard/node"
)

// apiError is the body of every error response.
type apiError struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"` // the input field at fault, for inline form errors
}

// fieldError ties a validation error to an input field.
type fieldError struct {
	field string
	err   error
}

func (e *fieldError) Error() string { return e.err.Error() }
func (e *fieldError) Unwrap() error { return e.err }

func badField(field string, err error) error { return &fieldError{field: field, err: err} }

// statusOf is the one place error kinds become HTTP statuses.
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

var errBadRequest = errors.New("bad request")

func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		code := statusOf(err)
		body := apiError{Error: err.Error()}
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
