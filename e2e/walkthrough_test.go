package e2e

// This file has no build tag: it runs with the unit tests, without Envoy or Keycloak.

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/portcullis-authz/portcullis/config"
	"github.com/portcullis-authz/portcullis/internal/echo"
)

// TestEnvoyReadmeWalkthroughAgreesWithTheFiles reads the shell commands of envoy/README.md's
// walk-through and checks them against the files the end-to-end suite runs (envoy.yaml,
// portcullis.yaml, realm-demo.json, the echo upstream): a token fetched as written has the
// configured issuer, every address a command uses is the one the files use, and the upstream
// is the echo.
func TestEnvoyReadmeWalkthroughAgreesWithTheFiles(t *testing.T) {
	readme, err := os.ReadFile("../envoy/README.md")
	if err != nil {
		t.Fatal(err)
	}
	sh := walkShellCommands(string(readme))
	if len(sh) == 0 {
		t.Fatal("envoy/README.md has no sh block")
	}
	all := strings.Join(sh, "\n")
	cfg, err := config.Load("../envoy/portcullis.yaml")
	if err != nil {
		t.Fatal(err)
	}
	issuer := cfg.Issuers[0].Issuer
	envoy := walkEnvoy(t, "../envoy/envoy.yaml")

	find := func(what string, re *regexp.Regexp) []string {
		t.Helper()
		m := re.FindStringSubmatch(all)
		if m == nil {
			t.Fatalf("the walk-through has no %s (%s):\n%s", what, re, all)
		}
		return m[1:]
	}
	// No other spelling of the machine: tokens carry the host Keycloak was reached at.
	for _, bad := range []string{"localhost", "http.server", "0.0.0.0"} {
		if strings.Contains(all, bad) {
			t.Errorf("the walk-through's commands use %q", bad)
		}
	}
	kc := find("Keycloak start", regexp.MustCompile(`kc\.sh" start-dev --http-host=(\S+) --http-port=(\d+)`))
	if got := "http://" + net.JoinHostPort(kc[0], kc[1]) + "/realms/demo"; got != issuer {
		t.Errorf("Keycloak is started as %s, the issuer is %s", got, issuer)
	}
	if got := find("token request", regexp.MustCompile(`(http://\S+)/protocol/openid-connect/token`))[0]; got != issuer {
		t.Errorf("the token is fetched from %s, the issuer is %s: its iss would not match", got, issuer)
	}
	grant := find("password grant", regexp.MustCompile(`-d grant_type=password -d client_id=(\S+) -d username=(\S+) -d password=(\S+)`))
	walkRealmLogin(t, "../envoy/realm-demo.json", grant[0], grant[1], grant[2])

	upstream := echo.DefaultAddr
	if m := regexp.MustCompile(`go run \./examples/echo -addr (\S+)`).FindStringSubmatch(all); m != nil {
		upstream = m[1]
	} else {
		find("echo upstream", regexp.MustCompile(`(go run \./examples/echo)`))
	}
	if upstream != envoy["upstream"] {
		t.Errorf("the echo listens on %s, Envoy's upstream cluster is %s", upstream, envoy["upstream"])
	}
	if got := find("portcullis serve", regexp.MustCompile(`go run \./cmd/portcullis serve --config (\S+)`))[0]; got != "envoy/portcullis.yaml" {
		t.Errorf("Portcullis serves %s", got)
	}
	if got := find("envoy start", regexp.MustCompile(`"\$ENVOY" -c (\S+)`))[0]; got != "envoy/envoy.yaml" {
		t.Errorf("Envoy runs %s", got)
	}
	if cfg.Server.GRPCAddr != envoy["portcullis"] {
		t.Errorf("Portcullis listens on %s, Envoy's portcullis cluster is %s", cfg.Server.GRPCAddr, envoy["portcullis"])
	}
	if got := find("readiness wait", regexp.MustCompile(`curl -sf http://(\S+)/readyz`))[0]; got != cfg.Server.AdminAddr {
		t.Errorf("/readyz is asked at %s, admin_addr is %s", got, cfg.Server.AdminAddr)
	}
	// Every other URL a curl sends to is Envoy's listener.
	var requests int
	for _, m := range regexp.MustCompile(`curl [^\n]*?http://([^/\s]+)(/[^\s;"']*)`).FindAllStringSubmatch(all, -1) {
		if strings.HasSuffix(m[2], "/readyz") || strings.HasSuffix(m[2], "/openid-connect/token") {
			continue
		}
		requests++
		if m[1] != envoy["listener"] {
			t.Errorf("a request goes to %s%s, Envoy listens on %s", m[1], m[2], envoy["listener"])
		}
	}
	if requests < 3 {
		t.Errorf("%d requests through Envoy, want the 401, the GET and the POST", requests)
	}
}

// walkShellCommands returns the lines of the ```sh blocks of a Markdown text, continuation
// lines joined, comments cut.
func walkShellCommands(md string) []string {
	var out []string
	in := false
	var cur string
	for _, line := range strings.Split(md, "\n") {
		switch {
		case strings.HasPrefix(line, "```sh"):
			in = true
			continue
		case strings.HasPrefix(line, "```"):
			in = false
			continue
		case !in:
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur += strings.TrimSuffix(line, "\\")
			continue
		}
		line = cur + line
		cur = ""
		if i := strings.Index(line, " # "); i >= 0 {
			line = line[:i]
		}
		out = append(out, strings.Join(strings.Fields(line), " "))
	}
	return out
}

// walkEnvoy reads the listener's address and the clusters' first endpoints of an Envoy
// configuration: "listener", and each cluster by name.
func walkEnvoy(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		StaticResources struct {
			Listeners []struct {
				Address walkSocket `yaml:"address"`
			} `yaml:"listeners"`
			Clusters []struct {
				Name           string `yaml:"name"`
				LoadAssignment struct {
					Endpoints []struct {
						LBEndpoints []struct {
							Endpoint struct {
								Address walkSocket `yaml:"address"`
							} `yaml:"endpoint"`
						} `yaml:"lb_endpoints"`
					} `yaml:"endpoints"`
				} `yaml:"load_assignment"`
			} `yaml:"clusters"`
		} `yaml:"static_resources"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	if len(doc.StaticResources.Listeners) != 1 {
		t.Fatalf("%s: %d listeners, want 1", path, len(doc.StaticResources.Listeners))
	}
	out["listener"] = doc.StaticResources.Listeners[0].Address.String()
	for _, c := range doc.StaticResources.Clusters {
		eps := c.LoadAssignment.Endpoints
		if len(eps) == 0 || len(eps[0].LBEndpoints) == 0 {
			t.Fatalf("%s: cluster %s has no endpoint", path, c.Name)
		}
		out[c.Name] = eps[0].LBEndpoints[0].Endpoint.Address.String()
	}
	return out
}

type walkSocket struct {
	SocketAddress struct {
		Address   string `yaml:"address"`
		PortValue int    `yaml:"port_value"`
	} `yaml:"socket_address"`
}

func (s walkSocket) String() string {
	return net.JoinHostPort(s.SocketAddress.Address, fmt.Sprint(s.SocketAddress.PortValue))
}

// walkRealmLogin checks that the realm has client (public, password grant) and user with password.
func walkRealmLogin(t *testing.T, path, client, user, password string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type realmClient struct {
		ClientID     string `json:"clientId"`
		PublicClient bool   `json:"publicClient"`
		DirectGrants bool   `json:"directAccessGrantsEnabled"`
	}
	var realm struct {
		Clients []realmClient `json:"clients"`
		Users   []struct {
			Username    string `json:"username"`
			Credentials []struct {
				Value string `json:"value"`
			} `json:"credentials"`
		} `json:"users"`
	}
	if err := json.Unmarshal(b, &realm); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(realm.Clients, func(c realmClient) bool {
		return c.ClientID == client && c.PublicClient && c.DirectGrants
	}) {
		t.Errorf("%s has no public client %q with the password grant", path, client)
	}
	found := false
	for _, u := range realm.Users {
		for _, c := range u.Credentials {
			found = found || u.Username == user && c.Value == password
		}
	}
	if !found {
		t.Errorf("%s has no user %q with the password %q", path, user, password)
	}
}
