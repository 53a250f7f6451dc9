package main

import (
	"bufio"
	"errors"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/portcullis-authz/portcullis/bench/internal/load"
	"github.com/portcullis-authz/portcullis/internal/devidp"
)

func TestMedianAndRatios(t *testing.T) {
	for _, c := range []struct {
		xs   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(c.xs); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.xs, got, c.want)
		}
	}
	xs := []float64{4, 1, 3}
	median(xs)
	if xs[0] != 4 || xs[1] != 1 {
		t.Errorf("median sorted its argument: %v", xs)
	}
	// Per-round ratios, not the ratio of the sums: a slow round of both sides does not weigh more.
	got := ratios([]float64{100, 300, 50}, []float64{200, 300, 0, 7})
	if len(got) != 2 || got[0] != 0.5 || got[1] != 1 {
		t.Errorf("ratios = %v, want [0.5 1] (a zero denominator skipped, the extra round ignored)", got)
	}
	if m := median(ratios([]float64{100, 400, 90}, []float64{100, 100, 100})); m != 1 {
		t.Errorf("median of the per-round ratios = %v, want 1", m)
	}
}

func TestOutcomes(t *testing.T) {
	for _, c := range []struct {
		name string
		got  outcome
		want outcome
	}{
		{"http 200", httpOutcome(200, nil), allowed},
		{"http 204", httpOutcome(204, nil), allowed},
		{"http 401", httpOutcome(401, nil), refused},
		{"http 403", httpOutcome(403, nil), refused},
		{"http 400", httpOutcome(400, nil), failed},
		{"http 503 (an outage is no proof of verification)", httpOutcome(503, nil), failed},
		{"http error", httpOutcome(200, errors.New("reset")), failed},
		{"grpc ok_response", grpcOutcome(load.Answer{Allowed: true}, nil), allowed},
		{"grpc denied_response", grpcOutcome(load.Answer{Denied: true}, nil), refused},
		{"grpc neither", grpcOutcome(load.Answer{}, nil), failed},
		{"grpc both", grpcOutcome(load.Answer{Allowed: true, Denied: true}, nil), failed},
		{"grpc error", grpcOutcome(load.Answer{Denied: true}, errors.New("unavailable")), failed},
	} {
		if c.got != c.want {
			t.Errorf("%s: %s, want %s", c.name, c.got, c.want)
		}
	}
}

func TestFailures(t *testing.T) {
	rs := []probeResult{
		{"good token", allowed, allowed},
		{"alg none", refused, allowed},
		{"expired", refused, refused},
		{"wrong audience", refused, failed},
	}
	got := strings.Join(failures(rs), "; ")
	if want := "alg none: allowed, want refused; wrong audience: failed, want refused"; got != want {
		t.Errorf("failures = %q, want %q", got, want)
	}
	if f := failures(rs[:1]); f != nil {
		t.Errorf("failures of a passing target = %v", f)
	}
}

func TestParseStatTicks(t *testing.T) {
	// A command name with a space and a parenthesis: the fields are counted after the last ")".
	const stat = "4242 (envoy (main)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 1234 567 0 0 20 0 9 0 100 1000000 2000 18446744073709551615"
	got, err := parseStatTicks(stat)
	if err != nil || got != 1234+567 {
		t.Errorf("parseStatTicks = %d, %v; want 1801", got, err)
	}
	if _, err := parseStatTicks("4242 (x) S 1 2"); err == nil {
		t.Error("a short stat line was accepted")
	}
	if c := cpuPerRequest(150, 100, 10000); c != 150 {
		t.Errorf("cpuPerRequest(150 ticks, 10000 calls) = %v µs, want 150", c)
	}
}

func TestReplaceSection(t *testing.T) {
	doc := "# Benchmarks\n\nintro\n\n" + beginMarker + "\nold\n" + endMarker + "\n\n## Later\n"
	got, err := replaceSection(doc, "new\n\n")
	if want := "# Benchmarks\n\nintro\n\n" + beginMarker + "\nnew\n" + endMarker + "\n\n## Later\n"; err != nil || got != want {
		t.Errorf("replaceSection = %q, %v; want %q", got, err, want)
	}
	got, err = replaceSection("# Benchmarks\n", "new")
	if want := "# Benchmarks\n\n" + beginMarker + "\nnew\n" + endMarker + "\n"; err != nil || got != want {
		t.Errorf("no markers: %q, %v; want %q", got, err, want)
	}
	if _, err := replaceSection(endMarker+"\n"+beginMarker, "x"); err == nil {
		t.Error("markers out of order were accepted")
	}
}

func TestReadResponse(t *testing.T) {
	const two = "HTTP/1.1 401 Unauthorized\r\ncontent-length: 5\r\nwww-authenticate: Bearer\r\n\r\nhello" +
		"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
	r := bufio.NewReader(strings.NewReader(two))
	if s, keep, err := readResponse(r); s != 401 || !keep || err != nil {
		t.Errorf("first: %d %v %v", s, keep, err)
	}
	if s, keep, err := readResponse(r); s != 200 || keep || err != nil {
		t.Errorf("second: %d %v %v; want 200, not kept", s, keep, err)
	}
	for _, bad := range []string{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\n", "SSH-2.0\r\n"} {
		if _, _, err := readResponse(bufio.NewReader(strings.NewReader(bad))); err == nil {
			t.Errorf("%q was read", bad)
		}
	}
}

// TestProbeTokens: each refusal probe differs from the good token in exactly
// what it names, so a peer refusing it is refusing that.
func TestProbeTokens(t *testing.T) {
	prs := mustProbes(t)
	if prs[0].name != "good token" || prs[0].want != allowed {
		t.Fatalf("the first probe is %q", prs[0].name)
	}
	parts := func(tok string) []string { return strings.Split(tok, ".") }
	good := parts(prs[0].token)
	byName := map[string]probe{}
	for _, p := range prs[1:] {
		if p.want != refused {
			t.Errorf("%s: want %s", p.name, p.want)
		}
		byName[p.name] = p
	}
	if p := parts(byName["tampered payload"].token); p[0] != good[0] || p[2] != good[2] || p[1] == good[1] {
		t.Error("the tampered token does not keep the header and signature and change the payload")
	}
	if p := parts(byName["alg none"].token); p[1] != good[1] || p[2] != "" {
		t.Error("the alg none token does not carry the good payload without a signature")
	}
	for _, n := range []string{"foreign key, published kid", "HS256 keyed with the public key"} {
		if p := parts(byName[n].token); p[1] != good[1] || p[2] == good[2] {
			t.Errorf("%s: not the good payload under another signature", n)
		}
	}
}

func mustProbes(t *testing.T) []probe {
	t.Helper()
	idp, err := devidp.NewFor(jwa.RS256)
	if err != nil {
		t.Fatal(err)
	}
	idp.SetIssuer(issuer)
	prs, err := probes(idp)
	if err != nil {
		t.Fatal(err)
	}
	return prs
}
