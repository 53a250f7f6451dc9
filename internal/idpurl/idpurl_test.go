package idpurl

import "testing"

func TestRedacted(t *testing.T) {
	cases := []struct{ raw, want string }{
		{"https://sso.example.com/realms/demo/protocol/openid-connect/certs", "https://sso.example.com/realms/demo/protocol/openid-connect/certs"},
		{"https://user:s3cret@sso.example.com/keys", "https://user:xxxxx@sso.example.com/keys"},
		{"https://user@sso.example.com/keys", "https://user@sso.example.com/keys"},
		{"http://[::1]:8080/introspect", "http://[::1]:8080/introspect"},
		{"https://sso.example.com/%zz", "https://sso.example.com/%zz"}, // does not parse: as it is
	}
	for _, c := range cases {
		if got := Redacted(c.raw); got != c.want {
			t.Errorf("Redacted(%q) = %q, want %q", c.raw, got, c.want)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	cases := []struct {
		host string
		want bool
	}{
		{"localhost", true},
		{"LocalHost", true},
		{"127.0.0.1", true},
		{"127.3.2.1", true},
		{"::1", true},
		{"[::1]", false}, // a Hostname has no brackets
		{"localhost.example.com", false},
		{"10.0.0.1", false},
		{"sso.example.com", false},
		{"", false},
	}
	for _, c := range cases {
		if got := IsLoopback(c.host); got != c.want {
			t.Errorf("IsLoopback(%q) = %v, want %v", c.host, got, c.want)
		}
	}
}
