package main

import (
	"encoding/json"
	"errors"
	"io"

	"github.com/spf13/cobra"

	"github.com/portcullis-authz/portcullis/config"
)

// With --json, standard output stays JSON when a command fails: the error is printed there as
// an object (docs/cli.md, "JSON errors"), besides the usual `portcullis: ...` line on standard
// error.

// jsonError is the error member of a --json answer.
type jsonError struct {
	// Message is the error as standard error shows it, without "portcullis: ".
	Message string `json:"message"`
	// Problems are the problems of a configuration that does not load, one an entry, each
	// with its field path; absent for other errors.
	Problems []string `json:"problems,omitempty"`
}

// errorObject is what a --json command prints instead of its result when it fails.
type errorObject struct {
	Error *jsonError `json:"error"`
}

func newJSONError(err error) *jsonError {
	e := &jsonError{Message: err.Error()}
	var ce *config.Error
	if errors.As(err, &ce) {
		e.Problems = ce.Problems
	}
	return e
}

// reportedError marks an error the command has already put into its JSON answer, so that run
// does not print a second document.
type reportedError struct{ err error }

func (r reportedError) Error() string { return r.err.Error() }
func (r reportedError) Unwrap() error { return r.err }

// wantsJSON tells whether cmd was given --json (as far as its flags were parsed).
func wantsJSON(cmd *cobra.Command) bool {
	if cmd == nil {
		return false
	}
	f := cmd.Flags().Lookup("json")
	return f != nil && f.Value.Type() == "bool" && f.Value.String() == "true"
}

// writeJSONError prints err as an errorObject, indented as check's answer, or on one line.
func writeJSONError(w io.Writer, err error, indent bool) {
	enc := json.NewEncoder(w)
	if indent {
		enc.SetIndent("", "  ")
	}
	_ = enc.Encode(errorObject{Error: newJSONError(err)})
}
