package web

import (
	"github.com/bootyard/bootyard/httperr"
)

// apiError is the body of every error response.
type apiError = httperr.Body

// fieldError ties a validation error to an input field.
type fieldError = httperr.FieldError

func badField(field string, err error) error { return httperr.BadField(field, err) }

// statusOf is where the API's error kinds become HTTP statuses (httperr, shared with the
// machine endpoints).
func statusOf(err error) int { return httperr.Status(err) }

var errorHandler = httperr.Handler
