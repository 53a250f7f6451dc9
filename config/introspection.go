package config

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/portcullis-authz/portcullis/jwks"
	"github.com/portcullis-authz/portcullis/token"
)

// maxSecretBytes bounds a client_secret_file.
const maxSecretBytes = 4096

// Secret is a client secret read from a file. It prints as "[redacted]" so that it cannot
// reach a log or an error by accident; Reveal gives the value to the one place that sends it.
type Secret string

// String hides the secret.
func (Secret) String() string { return "[redacted]" }

// GoString hides the secret from %#v.
func (Secret) GoString() string { return `"[redacted]"` }

// Reveal returns the secret itself.
func (s Secret) Reveal() string { return string(s) }

// validateIntrospection checks issuers[].introspection and the rules that require it.
func (c *Config) validateIntrospection(errs, warns *[]string) {
	opaque := -1
	var with, without []int
	for i := range c.Issuers {
		is := &c.Issuers[i]
		in := is.Introspection
		if in == nil {
			without = append(without, i)
			continue
		}
		with = append(with, i)
		p := fmt.Sprintf("issuers[%d].introspection", i)
		if token.IsTemplate(is.Issuer) {
			*errs = append(*errs, fmt.Sprintf("%s: a %s template issuer cannot introspect (its tokens come from many tenants); remove introspection", p, token.TenantPlaceholder))
		}
		if in.ClientID == "" {
			*errs = append(*errs, p+".client_id: must be set to the id of a confidential client allowed to introspect, e.g. portcullis")
		}
		if in.ClientSecret != "" {
			*errs = append(*errs, p+".client_secret: a secret is never written in the configuration; put it in a file (mode 0600, a Kubernetes Secret) and name it in client_secret_file")
		}
		if in.ClientSecretFile == "" {
			*errs = append(*errs, p+".client_secret_file: must name the file holding the client secret, e.g. /etc/portcullis/introspection-secret")
		}
		checkReadable(errs, p+".client_secret_file", in.ClientSecretFile)
		if in.Endpoint != "" {
			if problem := endpointProblem(in.Endpoint, is.Issuer); problem != "" {
				*errs = append(*errs, fmt.Sprintf("%s.endpoint: %q %s", p, in.Endpoint, problem))
			}
		}
		if in.Timeout <= 0 {
			*errs = append(*errs, p+".timeout: must be positive, e.g. 2s")
		}
		if in.OpaqueTokens {
			if opaque >= 0 {
				*errs = append(*errs, fmt.Sprintf("%s.opaque_tokens: issuers[%d] (%s) accepts opaque tokens already; at most one issuer may, as an opaque token does not say who issued it and must never be sent to an issuer that did not", p, opaque, c.Issuers[opaque].Issuer))
			} else {
				opaque = i
			}
		}
	}
	for i, r := range c.Rules {
		if !r.Require.Active {
			continue
		}
		if len(with) == 0 {
			*errs = append(*errs, fmt.Sprintf("rules[%d].require.active: no issuer has introspection, so no token could pass; configure issuers[].introspection", i))
			continue
		}
		for _, j := range without {
			*warns = append(*warns, fmt.Sprintf("rules[%d].require.active: issuers[%d] (%s) has no introspection, so its tokens are refused (403) on rule %q", i, j, c.Issuers[j].Issuer, r.Name))
		}
	}
}

// endpointProblem says what is wrong with an introspection endpoint: it must be an absolute
// https URL, or plain http on loopback or when the issuer is plain http itself (the token and
// the client secret travel in the request).
func endpointProblem(endpoint, issuer string) string {
	if !jwks.IsHTTPURL(endpoint) {
		return "is not an absolute http(s) URL"
	}
	u, _ := url.Parse(endpoint)
	host := u.Hostname()
	if u.Scheme == "http" && !strings.HasPrefix(strings.ToLower(issuer), "http://") && host != "localhost" && host != "127.0.0.1" && host != "::1" {
		return "is plain http on a host other than loopback; the token and the client secret would travel unencrypted (use https)"
	}
	return ""
}

// readSecret reads a client_secret_file: its content without surrounding white space.
func readSecret(field, path string) (Secret, string) {
	b, err := os.ReadFile(path)
	switch {
	case err != nil:
		return "", fmt.Sprintf("%s: cannot read %q: %v", field, path, unwrapPath(err))
	case len(b) > maxSecretBytes:
		return "", fmt.Sprintf("%s: %q is larger than %d bytes; write the client secret alone in it", field, path, maxSecretBytes)
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return "", fmt.Sprintf("%s: %q is empty; write the client secret in it", field, path)
	}
	return Secret(b), ""
}
