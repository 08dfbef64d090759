package node

import "errors"

// Error kinds. Callers wrap them with context (fmt.Errorf("import %s: %w", mac, ErrConflict));
// the web layer maps each kind to one HTTP status in one place.
var (
	// ErrNotFound: no node, image or lease answers to that reference.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the name or MAC is already claimed, or the record changed underneath.
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the input does not parse or does not pass validation.
	ErrInvalid = errors.New("invalid")
	// ErrIllegalTransition: the state table does not allow the requested move.
	ErrIllegalTransition = errors.New("illegal state transition")
	// ErrRefused: the request is valid but would harm the cluster (quorum, cluster-init); --force overrides.
	ErrRefused = errors.New("refused")
	// ErrForbidden: the caller may not see or do this.
	ErrForbidden = errors.New("forbidden")
	// ErrUnavailable: what keeps the inventory cannot be reached now (the Kubernetes API
	// server behind a partition); nothing was changed, and the same request may work later.
	ErrUnavailable = errors.New("unavailable")
)
