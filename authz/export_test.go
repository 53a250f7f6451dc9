package authz

import (
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

// BenchAuthorizerInput is, for the benchmarks of the external test package (which may import
// tracing, itself importing authz), BenchmarkAuthorizeCached's engine and request.
func BenchAuthorizerInput(tb testing.TB) (*Engine, *Request) {
	e, idp := benchEngine(tb, 10000)
	return e, benchRequest(keycloakLike(tb, idp, jwa.RS256))
}
