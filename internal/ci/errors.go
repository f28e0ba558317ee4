package ci

import "errors"

// Errors shared across packages; check them with errors.Is.
var (
	ErrNotFound    = errors.New("ci: not found")
	ErrConflict    = errors.New("ci: conflict")
	ErrInvalid     = errors.New("ci: invalid input")
	ErrUnavailable = errors.New("ci: backend unavailable")
)
