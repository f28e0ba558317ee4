package cli

import (
	"fmt"

	"github.com/spf13/pflag"
)

// flagReader reads a command's flags into a config's fields. Reading a
// flag the command did not declare, or as another type, is an error — a
// misspelt name fails the config tests instead of leaving a field at its
// zero value. A flag only some of the commands sharing a config declare
// is read with optional, which says so at the call.
type flagReader struct {
	f   *pflag.FlagSet
	err error
}

func readFlags(f *pflag.FlagSet) *flagReader { return &flagReader{f: f} }

// declared reports whether the command declared the flag.
func (r *flagReader) declared(name string) bool { return r.f.Lookup(name) != nil }

// Err is the first read that failed.
func (r *flagReader) Err() error { return r.err }

// read sets *dst to the flag's value through get (a FlagSet's GetString,
// GetDuration…).
func read[T any](r *flagReader, name string, dst *T, get func(string) (T, error)) {
	v, err := get(name)
	if err != nil {
		if r.err == nil {
			r.err = fmt.Errorf("flag --%s: %w", name, err)
		}
		return
	}
	*dst = v
}

// optional is read for a flag some of the commands sharing a config do
// not declare: *dst keeps its default for those.
func optional[T any](r *flagReader, name string, dst *T, get func(string) (T, error)) {
	if r.declared(name) {
		read(r, name, dst, get)
	}
}
