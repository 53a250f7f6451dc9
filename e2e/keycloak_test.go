//go:build e2e

package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	realm        = "demo"
	publicClient = "portcullis-cli" // public client with the password grant (envoy/realm-demo.json)
	adminUser    = "admin"
)

// keycloak is a running Keycloak with the demo realm imported.
type keycloak struct {
	proc      *proc
	base      string // http://127.0.0.1:PORT
	issuer    string // base + /realms/demo
	adminPass string // bootstrap admin of the master realm
}

// startKeycloak runs `kc.sh start-dev` on loopback with an in-memory database, so every run
// starts from envoy/realm-demo.json and nothing survives it. The realm goes into
// <home>/data/import, the only place --import-realm reads.
func startKeycloak(s *stack, home string, port, mgmtPort int) (*keycloak, error) {
	realmJSON, err := os.ReadFile(filepath.Join(s.root, "envoy", "realm-demo.json"))
	if err != nil {
		return nil, err
	}
	importDir := filepath.Join(home, "data", "import")
	if err := os.MkdirAll(importDir, 0o755); err != nil {
		return nil, err
	}
	tmp := filepath.Join(importDir, ".realm-demo.json.tmp")
	if err := os.WriteFile(tmp, realmJSON, 0o644); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, filepath.Join(importDir, "realm-demo.json")); err != nil {
		return nil, err
	}

	k := &keycloak{
		base:      fmt.Sprintf("http://127.0.0.1:%d", port),
		adminPass: randomHex(12),
	}
	k.issuer = k.base + "/realms/" + realm
	k.proc, err = s.start("keycloak", []string{
		"KC_BOOTSTRAP_ADMIN_USERNAME=" + adminUser,
		"KC_BOOTSTRAP_ADMIN_PASSWORD=" + k.adminPass,
	}, filepath.Join(home, "bin", "kc.sh"),
		"start-dev",
		"--db=dev-mem",
		"--http-host=127.0.0.1",
		"--http-port="+strconv.Itoa(port),
		"--http-management-port="+strconv.Itoa(mgmtPort),
		"--import-realm",
	)
	if err != nil {
		return nil, err
	}
	wellKnown := k.issuer + "/.well-known/openid-configuration"
	timeout := keycloakStartTimeout
	if d, err := time.ParseDuration(os.Getenv("PORTCULLIS_E2E_KEYCLOAK_TIMEOUT")); err == nil && d > 0 {
		timeout = d // a machine busier than two cores can bear
	}
	if err := waitUntil(k.proc, timeout, "keycloak "+wellKnown, expectStatus(wellKnown, http.StatusOK)); err != nil {
		return k, err
	}
	return k, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

var kcClient = &http.Client{Timeout: 20 * time.Second}

// tokens is a token endpoint answer.
type tokens struct {
	Access  string `json:"access_token"`
	ID      string `json:"id_token"`
	Refresh string `json:"refresh_token"`
}

func (k *keycloak) tokenRequest(t *testing.T, realmName string, form url.Values) tokens {
	t.Helper()
	resp, err := kcClient.PostForm(k.base+"/realms/"+realmName+"/protocol/openid-connect/token", form)
	if err != nil {
		t.Fatalf("token request: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("token request for %s: %d %s", form.Get("username"), resp.StatusCode, body)
	}
	var tk tokens
	if err := json.Unmarshal(body, &tk); err != nil {
		t.Fatalf("token response: %v", err)
	}
	return tk
}

// login runs the password grant for user (password user+"-pw") through the public client.
func (k *keycloak) login(t *testing.T, user string) tokens {
	t.Helper()
	return k.tokenRequest(t, realm, url.Values{
		"grant_type": {"password"},
		"client_id":  {publicClient},
		"username":   {user},
		"password":   {user + "-pw"},
		"scope":      {"openid"},
	})
}

func (k *keycloak) adminToken(t *testing.T) string {
	t.Helper()
	return k.tokenRequest(t, "master", url.Values{
		"grant_type": {"password"},
		"client_id":  {"admin-cli"},
		"username":   {adminUser},
		"password":   {k.adminPass},
	}).Access
}

// addRSAKey adds an active RS256 signing key to the demo realm; a priority above the realm's
// generated key (100) makes Keycloak sign every new token with it.
func (k *keycloak) addRSAKey(t *testing.T, name string, priority int) {
	t.Helper()
	comp := map[string]any{
		"name":         name,
		"providerId":   "rsa-generated",
		"providerType": "org.keycloak.keys.KeyProvider",
		"parentId":     realm, // the realm's id; realm-demo.json sets it to its name
		"config": map[string][]string{
			"priority":  {strconv.Itoa(priority)},
			"enabled":   {"true"},
			"active":    {"true"},
			"algorithm": {"RS256"},
			"keySize":   {"2048"},
		},
	}
	body, _ := json.Marshal(comp)
	req, _ := http.NewRequest(http.MethodPost, k.base+"/admin/realms/"+realm+"/components", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+k.adminToken(t))
	req.Header.Set("Content-Type", "application/json")
	resp, err := kcClient.Do(req)
	if err != nil {
		t.Fatalf("add key: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("add key: %d %s", resp.StatusCode, b)
	}
}

// jwksKids lists the kids of the realm's published signing keys.
func (k *keycloak) jwksKids(t *testing.T) []string {
	t.Helper()
	resp, err := kcClient.Get(k.issuer + "/protocol/openid-connect/certs")
	if err != nil {
		t.Fatalf("jwks: %v", err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
			Use string `json:"use"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatalf("jwks: %v", err)
	}
	var kids []string
	for _, key := range set.Keys {
		if key.Use == "sig" {
			kids = append(kids, key.Kid)
		}
	}
	return kids
}

// jwtPart decodes part i (0 header, 1 claims) of a compact JWS without verifying anything.
func jwtPart(t *testing.T, token string, i int) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %d parts", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatalf("jwt part %d: %v", i, err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("jwt part %d: %v", i, err)
	}
	return m
}

func claims(t *testing.T, token string) map[string]any    { return jwtPart(t, token, 1) }
func jwtHeader(t *testing.T, token string) map[string]any { return jwtPart(t, token, 0) }
