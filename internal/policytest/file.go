// Package policytest runs policy test files (`portcullis test`): requests, each with a token
// the runner mints or a literal one, decided by the engine `serve` builds from the
// configuration under test, and compared with what the file expects. No network is used: each
// issuer's keys are replaced by a key generated for the run (server.Offline).
package policytest

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/portcullis-authz/portcullis/config"
	"github.com/portcullis-authz/portcullis/reason"
)

// File is a policy test file as written.
type File struct {
	// Config is the configuration under test, relative to the test file.
	Config string `yaml:"config"`
	Tests  []Case `yaml:"tests"`
}

// Case is one request and what its decision must be.
type Case struct {
	Name    string  `yaml:"name"`
	Request Request `yaml:"request"`
	Token   *Token  `yaml:"token"`
	Expect  Expect  `yaml:"expect"`
}

// Request is the request as Envoy would describe it.
type Request struct {
	// Method defaults to GET; it is upper-cased.
	Method string `yaml:"method"`
	// Host is the :authority, for rules with hosts.
	Host string `yaml:"host"`
	// Path is the request target as sent: undecoded, query allowed. Required.
	Path string `yaml:"path"`
	// Headers are more request headers; names are lower-cased.
	Headers map[string]string `yaml:"headers"`
	// Source is the client address Envoy reports (`source.address` in conditions): an IP
	// address, such as 10.1.2.3 or 2001:db8::1. Empty: none, as on the HTTP forward-auth front.
	Source string `yaml:"source"`
	// Context are the route's context_extensions (`context` in conditions, matched by
	// match.context); a `portcullis-rule` entry names the rule to apply, as on the gRPC front.
	Context map[string]string `yaml:"context"`
}

// Token is the request's bearer token: minted by the runner for a configured issuer from
// Claims, or Raw, a literal token. It is placed in the first of tokens.sources.
type Token struct {
	Issuer string         `yaml:"issuer"`
	Claims map[string]any `yaml:"claims"`
	Raw    string         `yaml:"raw"`
}

// Expect is what the decision must be; a field left out is not checked.
type Expect struct {
	// Decision is allow or deny (a dry-run rule's would-be deny is served as an allow).
	Decision *string `yaml:"decision"`
	Status   *int    `yaml:"status"`
	// Rule is the matched rule's name; "" means no rule matched.
	Rule *string `yaml:"rule"`
	// Reason is a reason code (package reason).
	Reason *string `yaml:"reason"`
	// Headers must be set, with exactly these values: the identity headers of an allow, the
	// answer headers (WWW-Authenticate) of a deny. Names are case-insensitive.
	Headers map[string]string `yaml:"headers"`
	// Removed must be in the decision's removal list (headers_to_remove).
	Removed []string `yaml:"removed"`
}

// Error is a test file that cannot be run: every problem found, each naming its field path.
type Error struct {
	File     string
	Problems []string
}

func (e *Error) Error() string {
	if len(e.Problems) == 1 {
		return e.File + ": " + e.Problems[0]
	}
	return fmt.Sprintf("%s: %d problems:\n  %s", e.File, len(e.Problems), strings.Join(e.Problems, "\n  "))
}

// readFile reads and checks the test file at path: strict decoding, then each case on its own
// and against the configuration it names, which is loaded as serve loads it.
func readFile(path string) (*File, *config.Loaded, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, nil, &Error{File: path, Problems: []string{fmt.Sprintf("cannot read the test file: %v", err)}}
	}
	var f File
	if problems := config.DecodeStrict(data, &f); problems != nil {
		return nil, nil, &Error{File: path, Problems: problems}
	}
	var problems []string
	fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if f.Config == "" {
		fail("config: required; name the configuration file to test, relative to this file")
	}
	if len(f.Tests) == 0 {
		fail("tests: no test cases; add at least one")
	}
	if len(problems) > 0 {
		return nil, nil, &Error{File: path, Problems: problems}
	}
	cfgPath := f.Config
	if !filepath.IsAbs(cfgPath) {
		cfgPath = filepath.Join(filepath.Dir(path), cfgPath)
	}
	if _, err := os.Stat(cfgPath); err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, nil, &Error{File: path, Problems: []string{fmt.Sprintf("config: cannot read %q (%s): %v", f.Config, cfgPath, err)}}
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return nil, nil, &Error{File: path, Problems: []string{fmt.Sprintf("config: %q does not load: %v", f.Config, err)}}
	}
	seen := map[string]int{}
	for i := range f.Tests {
		c := &f.Tests[i]
		p := fmt.Sprintf("tests[%d]", i)
		switch first, dup := seen[c.Name]; {
		case c.Name == "":
			fail("%s.name: required; name the case (it is what PASS and FAIL lines and --run show)", p)
		case dup:
			fail("%s.name: %q is also the name of tests[%d]; give each case its own name", p, c.Name, first)
		default:
			seen[c.Name] = i
		}
		problems = append(problems, c.check(p, f.Config, cfg)...)
	}
	if len(problems) > 0 {
		return nil, nil, &Error{File: path, Problems: problems}
	}
	return &f, cfg, nil
}

// check reports what is wrong with the case at field path p, for the configuration cfg
// (named name in the test file).
func (c *Case) check(p, name string, cfg *config.Loaded) []string {
	var problems []string
	fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if c.Request.Path == "" {
		fail("%s.request.path: required; give the request target as sent, e.g. /api/orders/1", p)
	}
	if src := c.Request.Source; src != "" {
		if _, err := netip.ParseAddr(src); err != nil {
			fail("%s.request.source: %q is not an IP address; give the client address as Envoy reports it, e.g. 10.1.2.3 or 2001:db8::1 (no port)", p, src)
		}
	}
	if t := c.Token; t != nil {
		switch {
		case t.Raw != "" && (t.Issuer != "" || t.Claims != nil):
			fail("%s.token: raw is a literal token; give either raw or issuer with claims, not both", p)
		case t.Raw == "" && t.Issuer == "":
			fail("%s.token: give issuer (with claims) for a token the runner mints, or raw for a literal token", p)
		case t.Issuer != "" && !slices.ContainsFunc(cfg.Issuers, func(is config.Issuer) bool { return is.Issuer == t.Issuer }):
			fail("%s.token.issuer: %q is not an issuer of %s; configured: %s", p, t.Issuer, name, issuerList(cfg))
		}
	}
	e := c.Expect
	if e.Decision == nil && e.Status == nil && e.Rule == nil && e.Reason == nil && e.Headers == nil && e.Removed == nil {
		fail("%s.expect: nothing to check; give at least one of decision, status, rule, reason, headers, removed", p)
	}
	if e.Decision != nil && *e.Decision != "allow" && *e.Decision != "deny" {
		fail("%s.expect.decision: %q is not allow or deny", p, *e.Decision)
	}
	if e.Status != nil && !slices.Contains(statuses(), *e.Status) {
		fail("%s.expect.status: %d is never answered; Portcullis answers %s", p, *e.Status, joinInts(statuses()))
	}
	if e.Rule != nil && *e.Rule != "" && cfg.RuleSet.Lookup(*e.Rule) == nil {
		fail("%s.expect.rule: %q is not a rule of %s; rules: %s (\"\" = no rule matched)", p, *e.Rule, name, ruleList(cfg))
	}
	if e.Reason != nil {
		if _, ok := reason.Of(reason.Code(*e.Reason)); !ok {
			fail("%s.expect.reason: %q is not a reason; reasons: %s", p, *e.Reason, reasonList())
		}
	}
	return problems
}

func issuerList(cfg *config.Loaded) string {
	names := make([]string, len(cfg.Issuers))
	for i, is := range cfg.Issuers {
		names[i] = fmt.Sprintf("%q", is.Issuer)
	}
	return strings.Join(names, ", ")
}

func ruleList(cfg *config.Loaded) string {
	names := make([]string, len(cfg.Rules))
	for i, r := range cfg.Rules {
		names[i] = r.Name
	}
	return strings.Join(names, ", ")
}

func reasonList() string {
	codes := reason.Codes()
	names := make([]string, len(codes))
	for i, c := range codes {
		names[i] = string(c)
	}
	return strings.Join(names, ", ")
}

// statuses are the HTTP statuses of the reasons, ascending.
func statuses() []int {
	var out []int
	for _, a := range reason.All() {
		if !slices.Contains(out, a.Status) {
			out = append(out, a.Status)
		}
	}
	slices.Sort(out)
	return out
}

func joinInts(ns []int) string {
	parts := make([]string, len(ns))
	for i, n := range ns {
		parts[i] = fmt.Sprint(n)
	}
	return strings.Join(parts, ", ")
}
