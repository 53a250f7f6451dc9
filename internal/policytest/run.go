package policytest

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/portcullis-authz/portcullis/authz"
	"github.com/portcullis-authz/portcullis/config"
	"github.com/portcullis-authz/portcullis/internal/devidp"
	"github.com/portcullis-authz/portcullis/jwks"
	"github.com/portcullis-authz/portcullis/server"
	"github.com/portcullis-authz/portcullis/token"
)

// tokenTTL is the lifetime of a minted token whose claims give no exp.
const tokenTTL = time.Hour

// Suite is a test file loaded and ready to run: its configuration's engine, with a key
// generated for each issuer in place of the issuer's own, and each case's request built.
type Suite struct {
	// Path is the test file, as given to Load.
	Path     string
	cases    []Case
	requests []authz.Request
	engine   *authz.Engine
}

// Load reads the test file at path, loads the configuration it names, generates a signing key
// for each issuer (of the kind its first allowed algorithm needs), builds the engine serve
// would build with those keys, and mints each case's token, now being the issue time. A file
// that cannot be run is an *Error naming every problem.
func Load(path string, now time.Time) (*Suite, error) {
	f, cfg, err := readFile(path)
	if err != nil {
		return nil, err
	}
	idps := map[string]*devidp.IdP{}
	sets := make([]*jwks.Set, len(cfg.Issuers))
	for i, is := range cfg.Issuers {
		algs := token.KeyAlgorithms(is.Algorithms)
		idp, err := devidp.NewFor(algs[0])
		if err != nil {
			return nil, fmt.Errorf("%s: issuers[%d]: %w", path, i, err)
		}
		if sets[i], err = jwks.ParseSet(idp.JWKS(), algs); err != nil {
			return nil, fmt.Errorf("%s: issuers[%d]: the generated key: %w", path, i, err)
		}
		idps[is.Issuer] = idp
	}
	engine, err := server.Offline(cfg, sets)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s := &Suite{Path: path, cases: f.Tests, engine: engine, requests: make([]authz.Request, len(f.Tests))}
	var problems []string
	for i := range f.Tests {
		c := &f.Tests[i]
		raw := ""
		if t := c.Token; t != nil {
			raw = t.Raw
			if t.Issuer != "" {
				if raw, err = mint(cfg, idps, t, now); err != nil {
					problems = append(problems, fmt.Sprintf("tests[%d].token.claims: %v", i, err))
					continue
				}
			}
		}
		s.requests[i] = buildRequest(cfg, &c.Request, raw)
	}
	if len(problems) > 0 {
		return nil, &Error{File: path, Problems: problems}
	}
	return s, nil
}

// mint signs t's claims with the key generated for its issuer, filling iss, aud (the issuer's
// first audience), iat and exp (now + 1 h) unless the claims give them; a claim given as null
// is left out.
func mint(cfg *config.Loaded, idps map[string]*devidp.IdP, t *Token, now time.Time) (string, error) {
	i := slices.IndexFunc(cfg.Issuers, func(is config.Issuer) bool { return is.Issuer == t.Issuer })
	is := cfg.Issuers[i]
	claims := devidp.Claims{"iss": is.Issuer}
	if len(is.Audiences) > 0 {
		claims["aud"] = is.Audiences[0]
	}
	maps.Copy(claims, t.Claims)
	tok, err := idps[is.Issuer].MintAt(jwa.SignatureAlgorithm(is.Algorithms[0]), claims, now, tokenTTL)
	if err != nil {
		return "", fmt.Errorf("cannot sign them: %s", strings.TrimPrefix(err.Error(), "devidp: "))
	}
	return tok, nil
}

// buildRequest is the request as a front hands it to the engine; a token goes into the first
// of tokens.sources, as `portcullis check` places it. Source and Context are what the gRPC
// front reads from the CheckRequest: the source address and the context_extensions, a
// portcullis-rule entry naming the rule to apply.
func buildRequest(cfg *config.Loaded, r *Request, tok string) authz.Request {
	method := strings.ToUpper(r.Method)
	if method == "" {
		method = "GET"
	}
	req := authz.Request{Method: method, Host: r.Host, Path: r.Path, Headers: map[string]string{}, SourceAddress: r.Source}
	if len(r.Context) > 0 {
		req.Context = maps.Clone(r.Context)
		req.RuleName = r.Context[authz.ContextExtensionRule]
	}
	for k, v := range r.Headers {
		req.Headers[strings.ToLower(k)] = v
	}
	if r.Host != "" {
		req.Headers["host"] = r.Host
	}
	if tok != "" {
		src := cfg.Tokens.Sources[0]
		if src.Cookie != "" {
			cookie := src.Cookie + "=" + tok
			if prev := req.Headers["cookie"]; prev != "" {
				cookie = prev + "; " + cookie
			}
			req.Headers["cookie"] = cookie
		} else {
			req.Headers[src.Header] = src.Prefix + tok
		}
	}
	return req
}

// Run decides every case whose name filter matches (nil: every case), in file order.
func (s *Suite) Run(ctx context.Context, filter *regexp.Regexp) []Result {
	var out []Result
	for i := range s.cases {
		c := &s.cases[i]
		if filter != nil && !filter.MatchString(c.Name) {
			continue
		}
		req := s.requests[i]
		req.Headers = maps.Clone(req.Headers)
		d := s.engine.Decide(ctx, &req)
		out = append(out, compare(s.Path, c, d))
	}
	return out
}
