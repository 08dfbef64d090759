package httperr

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/bootyard/bootyard/node"
)

func TestStatus_EachErrorKindHasOneStatus(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{fmt.Errorf("node x: %w", node.ErrNotFound), 404},
		{fmt.Errorf("import: %w", node.ErrConflict), 409},
		{node.ErrIllegalTransition, 409},
		{node.ErrRefused, 409},
		{BadField("ip", fmt.Errorf("ip: %w", node.ErrInvalid)), 422},
		{node.ErrForbidden, 403},
		{fmt.Errorf("import: %w", node.ErrUnavailable), 503},
		{fmt.Errorf("%w: empty body", ErrBadRequest), 400},
		{&json.SyntaxError{}, 400},
		{echo.NewHTTPError(http.StatusUnauthorized, "admin token"), 401},
		{errors.New("disk on fire"), 500},
	}
	for _, tt := range tests {
		if got := Status(tt.err); got != tt.want {
			t.Errorf("Status(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

// TestHandler_AnswersWithTheBodyAndTheField runs a real echo with a body limit: bad
// input is a clear 4xx naming the field, an oversized body a 413.
func TestHandler_AnswersWithTheBodyAndTheField(t *testing.T) {
	e := echo.New()
	e.HTTPErrorHandler = Handler(slogDiscard())
	e.POST("/x", func(c echo.Context) error {
		var in struct {
			IP string `json:"ip"`
		}
		if err := DecodeJSON(c, &in, 64); err != nil {
			return err
		}
		return BadField("ip", fmt.Errorf("ip %q: %w", in.IP, node.ErrInvalid))
	}, middleware.BodyLimit("64B"))
	tests := []struct {
		name, body string
		wantCode   int
		wantBody   Body
	}{
		{"invalid value names its field", `{"ip":"x"}`, 422, Body{Error: `ip "x": invalid`, Field: "ip"}},
		{"unknown field", `{"ipp":"x"}`, 400, Body{Error: `bad request: body is not valid JSON for this call: json: unknown field "ipp"`}},
		{"empty body", ``, 400, Body{Error: "bad request: empty body, want a JSON object"}},
		{"over the limit", `{"ip":"` + strings.Repeat("1", 100) + `"}`, 413, Body{Error: "Request Entity Too Large"}}, // echo refuses it by Content-Length
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/x", strings.NewReader(tt.body)))
			var got Body
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || rec.Code != tt.wantCode || got != tt.wantBody {
				t.Errorf("%d %s, want %d %+v", rec.Code, rec.Body, tt.wantCode, tt.wantBody)
			}
		})
	}
}

func slogDiscard() *slog.Logger { return slog.New(slog.DiscardHandler) }
