package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/portcullis-authz/portcullis/config"
	"github.com/portcullis-authz/portcullis/internal/devidp"
	"github.com/portcullis-authz/portcullis/rules"
)

// TestWhenConfigs: the two servers of -when load, their rule under test is the one the
// benchmark request matches, and only the first has a condition.
func TestWhenConfigs(t *testing.T) {
	dir := t.TempDir()
	idp, err := devidp.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "keys.json"), idp.JWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		require string
		want    bool
	}{{tenantWhen, true}, {"{ any_roles: [user] }", false}} {
		cfg, err := config.Parse([]byte(configText("RS256", 10000, fmt.Sprintf(tenantRule, c.require))), dir)
		if err != nil {
			t.Fatalf("%s: %v", c.require, err)
		}
		r, _ := cfg.RuleSet.MatchRequest(&rules.Input{Method: "GET", Host: "api.example.com", Path: "/tenants/acme/orders/42"})
		if r == nil || r.Name() != "tenant-orders" || r.HasConditions() != c.want {
			t.Errorf("%s: rule %v, want tenant-orders with conditions %v", c.require, r, c.want)
		}
	}
}
