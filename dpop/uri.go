package dpop

import (
	"errors"
	"net/url"
	"strings"
)

// NormalizeURI is the form htu and the request's URI are compared in (RFC 9449 §4.3 point 9,
// with the syntax-based normalisation of RFC 3986 §6.2.2 and the scheme-based one of §6.2.3):
// scheme and host in lower case, the scheme's default port left out, an empty path as "/",
// percent-encodings in upper case and those of unreserved characters decoded, and the query and
// fragment dropped. Only absolute http and https URIs without user information are accepted.
func NormalizeURI(raw string) (string, error) {
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		raw = raw[:i]
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", errors.New("not a URI")
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", errors.New("not an absolute http or https URI")
	}
	if u.User != nil {
		return "", errors.New("user information in the URI")
	}
	host := strings.ToLower(u.Host)
	if host == "" {
		return "", errors.New("no host")
	}
	if h, ok := strings.CutSuffix(host, ":443"); ok && scheme == "https" {
		host = h
	} else if h, ok := strings.CutSuffix(host, ":80"); ok && scheme == "http" {
		host = h
	}
	path := normalizePercent(u.EscapedPath())
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path, nil
}

// normalizePercent upper-cases the hex digits of percent-encodings and decodes those of
// unreserved characters (RFC 3986 §2.3, §6.2.2.1, §6.2.2.2); anything else is kept.
func normalizePercent(p string) string {
	if !strings.Contains(p, "%") {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == '%' && i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]) {
			c := unhex(p[i+1])<<4 | unhex(p[i+2])
			if unreserved(c) {
				b.WriteByte(c)
			} else {
				b.WriteByte('%')
				b.WriteString(strings.ToUpper(p[i+1 : i+3]))
			}
			i += 2
			continue
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}
