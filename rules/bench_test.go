package rules

import (
	"fmt"
	"testing"
)

// benchRules builds n realistic rules: hosts, method lists and patterns with *, {id} and **,
// none matching the benchmark path before the last, so every rule is tried (the worst case).
func benchRules(b *testing.B, n int) *Set {
	b.Helper()
	specs := make([]Spec, 0, n)
	for i := 0; i < n-1; i++ {
		sp := Spec{Name: fmt.Sprintf("r%d", i)}
		switch i % 4 {
		case 0:
			sp.Match = MatchSpec{Paths: []string{fmt.Sprintf("/svc%d/**", i)}}
		case 1:
			sp.Match = MatchSpec{Hosts: []string{fmt.Sprintf("h%d.example.com", i)}, Paths: []string{"/api/**"}}
		case 2:
			sp.Match = MatchSpec{Methods: []string{"POST", "PUT"}, Paths: []string{fmt.Sprintf("/api/v%d/orders/{id}/lines/*", i)}}
		case 3:
			sp.Match = MatchSpec{Paths: []string{fmt.Sprintf("/api/team%d/**/edit", i), fmt.Sprintf("/api/team%d/{id}", i)}}
		}
		specs = append(specs, sp)
	}
	specs = append(specs, Spec{Name: "last", Match: MatchSpec{Paths: []string{"/api/**"}}})
	s, err := Compile(specs)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func benchMatch(b *testing.B, n int) {
	s := benchRules(b, n)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if r := s.Match("api.example.com:443", "GET", "/api/orders/42/items"); r == nil || r.Name() != "last" {
			b.Fatal("wrong rule")
		}
	}
}

func BenchmarkMatch10(b *testing.B)   { benchMatch(b, 10) }
func BenchmarkMatch100(b *testing.B)  { benchMatch(b, 100) }
func BenchmarkMatch1000(b *testing.B) { benchMatch(b, 1000) }

func BenchmarkNormalizePathClean(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := NormalizePath("/api/orders/42/items?expand=lines"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNormalizePathDirty(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := NormalizePath("//api/./orders/%34%32/x/../items"); err != nil {
			b.Fatal(err)
		}
	}
}
