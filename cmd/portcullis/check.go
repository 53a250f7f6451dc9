package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/portcullis-authz/portcullis/authz"
	"github.com/portcullis-authz/portcullis/config"
	"github.com/portcullis-authz/portcullis/jwks"
	"github.com/portcullis-authz/portcullis/reason"
	"github.com/portcullis-authz/portcullis/server"
)

type checkFlags struct {
	config  string
	token   string
	method  string
	host    string
	path    string
	headers []string
	source  string
	context []string
	json    bool
	wait    time.Duration
}

func newCheckCmd(g *globals) *cobra.Command {
	f := &checkFlags{}
	cmd := &cobra.Command{
		Use:   "check --config FILE --token T [--method GET] [--host H] --path P [--header K=V]... [--source ADDR] [--context K=V]... [--json]",
		Short: "Evaluate one request with the real engine and explain the decision",
		Long: `Evaluate one request as serve would (the issuers' keys are fetched for real) and explain:
the decision, the HTTP status, the matched rule, the reason, the identity headers, for a
refused token the precise cause with a hint, and for unmet requirements each one, with the
values a condition (require.when) saw. --source and --context give what Envoy sends beside
the request: the client address and the route's context_extensions.
T may be a token (without "Bearer "), @file, or - for standard input. A DPoP-bound token goes
in --header "authorization=DPoP T" with its proof in --header "dpop=PROOF" (for https://HOST).
Exit 0 allow, 1 deny, 2 error (also when the keys of the token's issuer could not be fetched,
or its introspection endpoint did not answer: no decision). An introspected token
(require.active, an opaque token) is explained with the answer: active or not, asked now or
from the cache, cached until when.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("log-level") {
				g.logLevel = "warn" // the explanation is the output; key loading is noise here
			}
			return runCheck(cmd.Context(), g, f)
		},
	}
	configFlag(cmd, &f.config)
	cmd.Flags().StringVar(&f.token, "token", "", "the bearer token: the token itself, @file, or - for stdin")
	cmd.Flags().StringVar(&f.method, "method", "GET", "request method")
	cmd.Flags().StringVar(&f.host, "host", "", "request host (:authority)")
	cmd.Flags().StringVar(&f.path, "path", "", "request path, as sent (query allowed)")
	cmd.Flags().StringArrayVar(&f.headers, "header", nil, "extra request header K=V (repeatable)")
	cmd.Flags().StringVar(&f.source, "source", "", "the client address Envoy reports (source.address), an IP address")
	cmd.Flags().StringArrayVar(&f.context, "context", nil, "a context extension K=V of the Envoy route (repeatable); portcullis-rule=NAME names the rule")
	cmd.Flags().BoolVar(&f.json, "json", false, `print the result as JSON; an error too, as {"error": {"message": ..., "problems": [...]}}`)
	positiveDurationFlag(cmd.Flags(), &f.wait, "wait", 10*time.Second, "10s", "no key set could be fetched in no time",
		"how long at most to wait for the issuers' keys (an issuer's failed fetch ends its wait)")
	_ = cmd.MarkFlagRequired("path")
	return cmd
}

// checkResult is the JSON form of a check.
type checkResult struct {
	Decision string            `json:"decision"`
	Status   int               `json:"status"`
	Reason   string            `json:"reason"`
	Rule     string            `json:"rule,omitempty"`
	DryRun   bool              `json:"dry_run,omitempty"`
	Detail   string            `json:"detail,omitempty"`
	Hint     string            `json:"hint,omitempty"`
	Missing  []string          `json:"missing,omitempty"`
	Subject  string            `json:"sub,omitempty"`
	Issuer   string            `json:"issuer,omitempty"`
	Tenant   string            `json:"tenant,omitempty"`
	Roles    []string          `json:"roles,omitempty"`
	Headers  map[string]string `json:"headers,omitempty"`
	Remove   []string          `json:"remove,omitempty"`
	// Error is set when no decision could be made (exit 2): the explanation above says what
	// serve would answer, Error why check gives no decision.
	Error *jsonError `json:"error,omitempty"`

	// Introspection is what token introspection answered, when the token was introspected.
	Introspection *introspectionResult `json:"introspection,omitempty"`
}

// introspectionResult explains an introspected decision: who was asked, what it said, and
// whether the answer came from the cache and until when it stays there.
type introspectionResult struct {
	Issuer string `json:"issuer"`
	Active bool   `json:"active"`
	Cached bool   `json:"cached"`
	Until  string `json:"cached_until,omitempty"` // RFC 3339, UTC; absent when not kept
}

func runCheck(ctx context.Context, g *globals, f *checkFlags) error {
	if err := requireConfig(f.config); err != nil {
		return err
	}
	cfg, err := config.Load(f.config)
	if err != nil {
		return &exitError{2, err}
	}
	tok, err := readToken(f.token, g.stdin)
	if err != nil {
		return &exitError{2, err}
	}
	// The scheme is that of a proof's htu (a DPoP-bound token: --header "authorization=DPoP T"
	// --header "dpop=PROOF"); Envoy reports it, a one-off check assumes https.
	req := authz.Request{Method: strings.ToUpper(f.method), Host: f.host, Scheme: "https", Path: f.path, Headers: map[string]string{}}
	for _, h := range f.headers {
		k, v, ok := strings.Cut(h, "=")
		if !ok || k == "" {
			return &exitError{2, fmt.Errorf("--header %q: write it as Name=value", h)}
		}
		req.Headers[strings.ToLower(k)] = v
	}
	if f.host != "" {
		req.Headers["host"] = f.host
	}
	if f.source != "" {
		if _, err := netip.ParseAddr(f.source); err != nil {
			return &exitError{2, fmt.Errorf("--source %q: not an IP address; give the client address as Envoy reports it, e.g. 10.1.2.3 or 2001:db8::1 (no port)", f.source)}
		}
		req.SourceAddress = f.source
	}
	for _, c := range f.context {
		k, v, ok := strings.Cut(c, "=")
		if !ok || k == "" {
			return &exitError{2, fmt.Errorf("--context %q: write it as name=value", c)}
		}
		if req.Context == nil {
			req.Context = map[string]string{}
		}
		req.Context[k] = v
		if k == authz.ContextExtensionRule {
			req.RuleName = v
		}
	}
	if tok != "" {
		src := cfg.Tokens.Sources[0]
		if src.Cookie != "" {
			req.Headers["cookie"] = src.Cookie + "=" + tok
		} else {
			req.Headers[src.Header] = src.Prefix + tok
		}
	}
	log, err := g.logger()
	if err != nil {
		return err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	wctx, cancel := context.WithTimeout(ctx, f.wait)
	defer cancel()
	engine, missing, stop, err := server.OneShotStatus(wctx, cfg, log)
	if err != nil {
		return &exitError{2, err}
	}
	defer stop()
	d := engine.Decide(ctx, &req)
	res := resultOf(d)
	// Without the issuer's keys there is no decision to explain: serve would answer 503 until
	// they load, and check says why they did not (an error, exit 2, not a deny).
	var noKeys error
	if d.Reason == reason.Unavailable {
		var hint string
		hint, noKeys = keysError(missing, unverifiedIssuer(tok), f.wait)
		if hint != "" {
			res.Hint = hint
		}
	}
	// Nor is there one when the introspection endpoint could not say whether the token is
	// active: serve answers 503 until it does.
	if d.Reason == reason.IntrospectionUnavailable && d.Introspection != nil {
		noKeys = fmt.Errorf("no decision: the introspection endpoint of %s could not say whether the token is active: %s", d.Introspection.Issuer, d.Evaluated().Detail)
	}
	if f.json {
		if noKeys != nil {
			res.Error = newJSONError(noKeys)
			noKeys = reportedError{noKeys}
		}
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return &exitError{2, err}
		}
	} else {
		printResult(g.stdout, res)
	}
	if noKeys != nil {
		return &exitError{2, noKeys}
	}
	if !d.Allow {
		return &exitError{code: 1}
	}
	return nil
}

func readToken(t string, stdin io.Reader) (string, error) {
	switch {
	case t == "-":
		b, err := io.ReadAll(io.LimitReader(stdin, 1<<20))
		if err != nil {
			return "", fmt.Errorf("--token -: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	case strings.HasPrefix(t, "@"):
		name := t[1:]
		b, err := os.ReadFile(name)
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err // the path is named below, as given
			}
			return "", fmt.Errorf("--token @%s: cannot read %q: %w", name, name, err)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return "", fmt.Errorf("--token @%s: the file %q is empty; write the token into it (or pass it with --token T)", name, name)
		}
		return tok, nil
	}
	return strings.TrimSpace(t), nil
}

// keysError says why the keys of the token's issuer (iss, as the token claims it, unverified)
// are missing, for standard error, and what to do, for the explanation's hint: the last fetch
// error of its key set, or a --wait too short for the first fetch.
func keysError(missing []jwks.Status, iss string, wait time.Duration) (hint string, err error) {
	for _, st := range missing {
		if st.Issuer != iss {
			continue
		}
		if st.LastError != "" {
			return "fetching them failed (" + st.LastError + "): make the issuer's keys reachable from here (jwks_uri, or its discovery document), or give them in jwks_file",
				fmt.Errorf("no decision: the keys of issuer %s could not be fetched: %s", iss, st.LastError)
		}
		return "no fetch ended within --wait " + wait.String() + ": raise --wait, or check that the identity provider answers",
			fmt.Errorf("no decision: the keys of issuer %s were not fetched within --wait %s", iss, wait)
	}
	return "", errors.New("no decision: the issuer's keys are not available")
}

// unverifiedIssuer reads the iss claim of a compact JWS without verifying anything: only to
// name the issuer whose keys are missing.
func unverifiedIssuer(tok string) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var cl struct {
		Iss string `json:"iss"`
	}
	if json.Unmarshal(b, &cl) != nil {
		return ""
	}
	return cl.Iss
}

func resultOf(d *authz.Decision) checkResult {
	ev := d.Evaluated() // a dry-run rule's would-be deny is explained, the allow served is shown
	r := checkResult{Decision: "deny", Status: d.Status, Reason: string(d.Reason), Rule: d.Rule, DryRun: d.DryRun != nil,
		Detail: ev.Detail, Hint: ev.Hint, Missing: ev.Missing, Remove: d.UpstreamRemove}
	if d.Allow {
		r.Decision = "allow"
	}
	if id := d.Identity; id != nil {
		r.Subject, r.Issuer, r.Tenant, r.Roles = id.Subject, id.Issuer, id.Tenant, id.Roles
	}
	if in := d.Introspection; in != nil {
		r.Introspection = &introspectionResult{Issuer: in.Issuer, Active: in.Active, Cached: in.Cached}
		if !in.Until.IsZero() {
			r.Introspection.Until = in.Until.UTC().Format(time.RFC3339)
		}
	}
	if len(d.Upstream) > 0 {
		r.Headers = map[string]string{}
		for _, h := range d.Upstream {
			r.Headers[h.Name] = h.Value
		}
	}
	return r
}

func printResult(w io.Writer, r checkResult) {
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "%-10s %s\n", k+":", v)
		}
	}
	dec := fmt.Sprintf("%s (HTTP %d)", strings.ToUpper(r.Decision), r.Status)
	if r.DryRun {
		dec += " — rule is in dry-run mode"
	}
	line("decision", dec)
	line("reason", r.Reason)
	rule := r.Rule
	if rule == "" {
		rule = "(none matched)"
	}
	line("rule", rule)
	if len(r.Missing) > 0 {
		// Unmet requirements (the detail is their list), one a line: a condition's text and
		// values may hold commas.
		fmt.Fprintln(w, "missing:")
		for _, m := range r.Missing {
			fmt.Fprintf(w, "  - %s\n", m)
		}
	} else {
		line("detail", r.Detail)
	}
	line("hint", r.Hint)
	line("sub", r.Subject)
	line("issuer", r.Issuer)
	line("tenant", r.Tenant)
	if len(r.Roles) > 0 {
		line("roles", strings.Join(r.Roles, ", "))
	}
	if in := r.Introspection; in != nil {
		line("introspected", describeIntrospection(in, reason.Code(r.Reason)))
	}
	if len(r.Headers) > 0 {
		fmt.Fprintln(w, "headers:")
		for _, k := range slices.Sorted(maps.Keys(r.Headers)) {
			fmt.Fprintf(w, "  %s: %s\n", k, r.Headers[k])
		}
	}
	if len(r.Remove) > 0 {
		line("removed", strings.Join(r.Remove, ", "))
	}
}

// describeIntrospection is the text form of an introspected decision: "active at ISSUER,
// asked now, cached until T".
func describeIntrospection(in *introspectionResult, r reason.Code) string {
	if r == reason.IntrospectionUnavailable {
		return "no answer from " + in.Issuer
	}
	s := "not active at " + in.Issuer
	if in.Active {
		s = "active at " + in.Issuer
	}
	if in.Cached {
		s += ", from the cache"
	} else {
		s += ", asked now"
	}
	if in.Until != "" {
		return s + ", cached until " + in.Until
	}
	return s + ", not cached"
}
