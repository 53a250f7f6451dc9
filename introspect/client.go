package introspect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/portcullis-authz/portcullis/internal/idpurl"
	"github.com/portcullis-authz/portcullis/token"
)

// maxAnswerBytes bounds an introspection answer or a discovery document.
const maxAnswerBytes = 1 << 20

// post makes one introspection request (RFC 7662 §2.1) and reads its answer (§2.2); status is
// the answer's HTTP status (0 when none came). Errors name the endpoint and what was wrong,
// never the token, the secret or the body.
func (in *Introspector) post(ctx context.Context, endpoint, raw string) (Answer, int, error) {
	form := url.Values{"token": {raw}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return Answer{}, 0, fmt.Errorf("POST %s: %w", idpurl.Redacted(endpoint), err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "portcullis")
	// RFC 6749 §2.3.1: the client id and secret are form-encoded before the basic scheme's
	// base64 (RFC 7617).
	req.SetBasicAuth(url.QueryEscape(in.clientID), url.QueryEscape(in.secret))
	resp, err := in.client.Do(req)
	if err != nil {
		return Answer{}, 0, fmt.Errorf("POST %s: %s", idpurl.Redacted(endpoint), transportError(err))
	}
	defer resp.Body.Close()
	status := resp.StatusCode
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		msg := fmt.Sprintf("POST %s: HTTP %d", idpurl.Redacted(endpoint), resp.StatusCode)
		switch resp.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			msg += "; the endpoint refused Portcullis's client credentials (check client_id and client_secret_file, and that the client is confidential)"
		case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
			msg += "; redirects are not followed (the token goes to the configured endpoint only): configure the final URL"
		}
		return Answer{}, status, errors.New(msg)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	if err != nil {
		return Answer{}, status, fmt.Errorf("POST %s: reading the answer: %s", idpurl.Redacted(endpoint), transportError(err))
	}
	if len(body) > maxAnswerBytes {
		return Answer{}, status, fmt.Errorf("POST %s: malformed answer: larger than %d bytes", idpurl.Redacted(endpoint), maxAnswerBytes)
	}
	ans, problem := parseAnswer(body)
	if problem != "" {
		return Answer{}, status, fmt.Errorf("POST %s: malformed answer: %s", idpurl.Redacted(endpoint), problem)
	}
	return ans, status, nil
}

// parseAnswer reads an introspection answer: a JSON object whose `active` is a boolean. The
// members of an active answer are its claims; `active` itself is not one of them. The answer is
// held to what a token's claims are (token.CheckJSONObject): encoding/json alone would keep the
// last of two `active` members, or of two `sub`.
func parseAnswer(body []byte) (Answer, string) {
	if err := token.CheckJSONObject(body); err != nil {
		return Answer{}, err.Error()
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return Answer{}, "not a JSON object"
	}
	v, ok := m["active"]
	if !ok {
		return Answer{}, "no active member"
	}
	active, ok := v.(bool)
	if !ok {
		return Answer{}, fmt.Sprintf("active is a %s, not a boolean", jsonType(v))
	}
	if !active {
		return Answer{Active: false}, ""
	}
	delete(m, "active")
	if exp, ok := m["exp"]; ok {
		if _, ok := numericDate(exp); !ok {
			return Answer{}, "exp is not a NumericDate"
		}
	}
	return Answer{Active: true, Claims: m}, ""
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case float64:
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// discoverEndpoint reads the introspection_endpoint of the issuer's discovery document: the
// OpenID Provider Configuration, whose issuer must be the configured one exactly.
// Its span (trace.go) is a child of the call's.
func (in *Introspector) discoverEndpoint(ctx context.Context) (ep string, err error) {
	where := strings.TrimSuffix(in.issuer, "/") + "/.well-known/openid-configuration"
	status := 0
	ctx, span := in.startSpan(ctx, spanDiscovery)
	if span.On() {
		span.SetAttributes(attribute.String("http.request.method", http.MethodGet), attribute.String("url.full", idpurl.Redacted(where)))
	}
	defer func() { span.End(status, err) }()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, where, nil)
	if err != nil {
		return "", fmt.Errorf("discovery: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "portcullis")
	resp, err := in.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("discovery: GET %s: %s", idpurl.Redacted(where), transportError(err))
	}
	defer resp.Body.Close()
	status = resp.StatusCode
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return "", fmt.Errorf("discovery: GET %s: HTTP %d", idpurl.Redacted(where), resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	if err != nil || len(body) > maxAnswerBytes {
		return "", fmt.Errorf("discovery: GET %s: unreadable or larger than %d bytes", idpurl.Redacted(where), maxAnswerBytes)
	}
	var doc struct {
		Issuer   any `json:"issuer"`
		Endpoint any `json:"introspection_endpoint"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(body), &doc); err != nil {
		return "", fmt.Errorf("discovery: %s is not a JSON object", idpurl.Redacted(where))
	}
	if iss, _ := doc.Issuer.(string); iss != in.issuer {
		return "", fmt.Errorf("discovery: %s names issuer %q but the configured issuer is %q", idpurl.Redacted(where), iss, in.issuer)
	}
	ep, _ = doc.Endpoint.(string)
	if ep == "" {
		return "", fmt.Errorf("discovery: %s has no introspection_endpoint; set introspection.endpoint", idpurl.Redacted(where))
	}
	if err := checkEndpoint(ep, in.issuer); err != nil {
		return "", fmt.Errorf("discovery: %s: introspection_endpoint %w", idpurl.Redacted(where), err)
	}
	return ep, nil
}

// transportError describes a failed request without the *url.Error's repetition of the URL.
func transportError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timed out"
	}
	return err.Error()
}

// numericDate converts a decoded JSON NumericDate (a float64) with token.NumericDate.
func numericDate(v any) (time.Time, bool) {
	f, ok := v.(float64)
	if !ok {
		return time.Time{}, false
	}
	return token.NumericDate(f)
}
