package authz

import (
	"strings"
)

// findToken returns the token from the first configured source (tokens.sources) present in
// the headers.
func (e *Engine) findToken(h map[string]string) (string, bool) {
	for _, s := range e.sources {
		if s.Cookie != "" {
			if v, ok := cookieValue(h["cookie"], s.Cookie); ok {
				return v, true
			}
			continue
		}
		v, ok := h[s.Header]
		if !ok {
			continue
		}
		if s.Prefix != "" {
			if len(v) < len(s.Prefix) || !strings.EqualFold(v[:len(s.Prefix)], s.Prefix) {
				continue
			}
			v = v[len(s.Prefix):]
		}
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		return v, true
	}
	return "", false
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
