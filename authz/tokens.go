package authz

import (
	"strings"
)

// findToken returns the token from the first configured source (tokens.sources) present in
// the headers. A header source with the prefix "Bearer " takes the "DPoP " scheme too (RFC
// 9449 §7.1); dpopScheme says the token came with it.
func (e *Engine) findToken(h map[string]string) (raw string, dpopScheme, found bool) {
	for _, s := range e.sources {
		if s.Cookie != "" {
			if v, ok := cookieValue(h["cookie"], s.Cookie); ok {
				return v, false, true
			}
			continue
		}
		v, ok := h[s.Header]
		if !ok {
			continue
		}
		if s.Prefix != "" {
			switch {
			case hasPrefixFold(v, s.Prefix):
				v = v[len(s.Prefix):]
			case strings.EqualFold(s.Prefix, bearerPrefix) && hasPrefixFold(v, dpopPrefix):
				v, dpopScheme = v[len(dpopPrefix):], true
			default:
				continue
			}
		}
		v = strings.TrimSpace(v)
		if v == "" {
			dpopScheme = false
			continue
		}
		return v, dpopScheme, true
	}
	return "", false, false
}

// The authorization schemes of a header source with the Bearer prefix.
const (
	bearerPrefix = "Bearer "
	dpopPrefix   = "DPoP "
)

func hasPrefixFold(v, prefix string) bool {
	return len(v) >= len(prefix) && strings.EqualFold(v[:len(prefix)], prefix)
}

// cookieValue finds a cookie in a Cookie header (several headers arrive joined by commas or
// semicolons).
func cookieValue(header, name string) (string, bool) {
	for header != "" {
		var part string
		i := strings.IndexAny(header, ";,")
		if i < 0 {
			part, header = header, ""
		} else {
			part, header = header[:i], header[i+1:]
		}
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if ok && k == name && v != "" {
			return strings.Trim(v, `"`), true
		}
	}
	return "", false
}

// describeSources names the token sources, for the detail of a no_token deny.
func (e *Engine) describeSources() string {
	parts := make([]string, 0, len(e.sources))
	for _, s := range e.sources {
		if s.Cookie != "" {
			parts = append(parts, "cookie "+s.Cookie)
		} else {
			parts = append(parts, "header "+s.Header)
		}
	}
	return strings.Join(parts, ", ")
}

// stripToken removes every configured token carrier from the upstream request of an allow
// (forward_token: false): a source header the request carries is removed; the token cookies
// are cut out of the Cookie header, which is set without them, or removed when nothing else is
// left in it. d's header lists must be its own (not the token cache's).
func (e *Engine) stripToken(d *Decision, h map[string]string) {
	var cookies []string
	for _, s := range e.sources {
		if s.Header != "" {
			if _, ok := h[s.Header]; ok {
				d.UpstreamRemove = append(d.UpstreamRemove, s.Header)
			}
			if _, ok := h[dpopHeader]; ok && s.Header == "authorization" {
				// The proof goes with the token it is bound to.
				d.UpstreamRemove = append(d.UpstreamRemove, dpopHeader)
			}
		} else {
			cookies = append(cookies, s.Cookie)
		}
	}
	if len(cookies) == 0 || h["cookie"] == "" {
		return
	}
	var kept []string
	for _, part := range strings.FieldsFunc(h["cookie"], func(r rune) bool { return r == ';' || r == ',' }) {
		part = strings.TrimSpace(part)
		name, _, _ := strings.Cut(part, "=")
		drop := false
		for _, c := range cookies {
			drop = drop || name == c
		}
		if !drop && part != "" {
			kept = append(kept, part)
		}
	}
	if len(kept) == 0 {
		d.UpstreamRemove = append(d.UpstreamRemove, "cookie")
	} else {
		d.Upstream = append(d.Upstream, Header{"cookie", strings.Join(kept, "; ")})
	}
}
