package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/spf13/cobra"

	"github.com/portcullis-authz/portcullis/internal/policytest"
)

type testFlags struct {
	json bool
	run  string
}

func newTestCmd(g *globals) *cobra.Command {
	f := &testFlags{}
	cmd := &cobra.Command{
		Use:   "test [--json] [--run REGEXP] FILE...",
		Short: "Run policy test files: requests decided by the real engine, offline, against expectations",
		Long: `Run policy test files. Each file names the configuration under test (relative to the file)
and lists cases: a request, an optional token, and what the decision must be:

  config: portcullis.yaml
  tests:
    - name: alice reads an order
      request: { method: GET, host: api.example.com, path: /api/orders/1, headers: { x-tenant: acme } }
      token:
        issuer: "https://sso.example.com/realms/demo"   # a configured issuer
        claims: { sub: alice, email_verified: true, realm_access: { roles: [user] } }
      expect: { decision: allow, status: 200, rule: api, reason: ok, headers: { x-user-id: alice } }

The runner mints each token from its claims, filling iss, aud (the issuer's first audience),
iat and exp (now + 1h) unless given (a claim given as null is left out), and signs it with a
key generated for the run in place of the issuer's keys (of the kind of its first allowed
algorithm). token.raw gives a literal token instead. Each request is decided by the engine
serve builds from the configuration: rules, identity headers and every check of the issuer.
Nothing is fetched: no network is used.

expect fields left out are not checked: decision (allow or deny), status, rule ("" = no rule
matched), reason (a reason code), headers (name: exact value, must be set) and removed
(headers that must be in the removal list).

Prints "PASS name" or "FAIL name: expected ...; got ..." per case, then "N passed, M failed";
--json prints JSON Lines instead: one object per case, then {"summary": {...}}.
Exit 0 when every case passed, 1 when one failed, 2 on an error (a file that cannot be read or
parsed, names an issuer, rule or reason that does not exist, or a configuration that does not
load).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			return runTest(cmd, g, f, files)
		},
	}
	cmd.Flags().BoolVar(&f.json, "json", false, "print JSON Lines: one object per case, then a summary object")
	cmd.Flags().StringVar(&f.run, "run", "", "run only the cases whose name matches this regular expression (Go syntax, unanchored)")
	return cmd
}

// testSummary is the last JSON line of `portcullis test --json`.
type testSummary struct {
	Summary struct {
		Passed int `json:"passed"`
		Failed int `json:"failed"`
	} `json:"summary"`
}

func runTest(cmd *cobra.Command, g *globals, f *testFlags, files []string) error {
	var filter *regexp.Regexp
	if f.run != "" {
		re, err := regexp.Compile(f.run)
		if err != nil {
			return &exitError{2, fmt.Errorf("--run %q: %w", f.run, err)}
		}
		filter = re
	}
	// Every file is loaded before any case runs: an error in one is reported before output.
	now := time.Now()
	suites := make([]*policytest.Suite, len(files))
	var errs []error
	for i, file := range files {
		s, err := policytest.Load(file, now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		suites[i] = s
	}
	if len(errs) > 0 {
		return &exitError{2, errors.Join(errs...)}
	}
	var sum testSummary
	enc := json.NewEncoder(g.stdout)
	for _, s := range suites {
		for _, r := range s.Run(cmd.Context(), filter) {
			if r.Passed {
				sum.Summary.Passed++
			} else {
				sum.Summary.Failed++
			}
			if f.json {
				if err := enc.Encode(r); err != nil {
					return &exitError{2, err}
				}
			} else {
				fmt.Fprintln(g.stdout, r.Line())
			}
		}
	}
	if f.json {
		if err := enc.Encode(sum); err != nil {
			return &exitError{2, err}
		}
	} else {
		fmt.Fprintf(g.stdout, "%d passed, %d failed\n", sum.Summary.Passed, sum.Summary.Failed)
	}
	if filter != nil && sum.Summary.Passed+sum.Summary.Failed == 0 {
		fmt.Fprintf(g.stderr, "portcullis: warning: --run %q matches no test case\n", f.run)
	}
	if sum.Summary.Failed > 0 {
		return &exitError{code: 1}
	}
	return nil
}
