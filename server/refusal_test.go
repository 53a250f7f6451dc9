package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// refusalConfig has one issuer whose keys are in keys.json; %s are lines added to the server
// block, to the issuer, and at the top level (rules included).
const refusalConfig = `
server:
  grpc_addr: "127.0.0.1:0"
  http_addr: "127.0.0.1:0"
  admin_addr: ""
%s
issuers:
  - issuer: "https://sso.example.com/realms/files"
    jwks_file: keys.json
%s
%s`

const (
	withAudience = "    audiences: [orders-api]"
	healthPublic = `rules:
  - name: health
    match: { paths: ["/healthz"] }
    public: true`
	statusPublic = `rules:
  - name: status
    match: { paths: ["/status"] }
    public: true`
	audienceWarning = "issuers[0].audiences: empty, so the `aud` claim is not checked and any token of this issuer is accepted whatever service it was issued for; list your client id"
)

// refusalDir is a directory with keys.json and a ca.pem that holds no certificate.
func refusalDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeFileConfig(t, dir, "", "") // keys.json; its portcullis.yaml is overwritten
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func writeRefusalConfig(t *testing.T, dir, server, issuer, rest string) string {
	t.Helper()
	path := filepath.Join(dir, "portcullis.yaml")
	writeAtomically(t, path, fmt.Sprintf(refusalConfig, server, issuer, rest))
	return path
}

// TestNewRefuses: a configuration that does not load, or whose key sets cannot be built, is
// refused by New with its message; the warnings of one that loads are logged.
func TestNewRefuses(t *testing.T) {
	dir := refusalDir(t)
	for _, c := range []struct {
		name, issuer, rest, want string
	}{
		{"invalid rule", withAudience, strings.Replace(healthPublic, `"/healthz"`, `"healthz"`, 1), `config: rules[0].match.paths[0]: "healthz" must start with "/"`},
		{"CA bundle without a certificate", withAudience + "\n    ca_file: ca.pem", healthPublic, "config: issuers[0].ca_file: \"{dir}/ca.pem\" holds no PEM certificate; write the CA certificates as PEM (\"-----BEGIN CERTIFICATE-----\" blocks)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := writeRefusalConfig(t, dir, "", c.issuer, c.rest)
			_, err := New(Options{ConfigPath: path})
			if want := strings.ReplaceAll(c.want, "{dir}", dir); err == nil || err.Error() != want {
				t.Errorf("New: %v\nwant %s", err, want)
			}
		})
	}
	t.Run("warnings logged", func(t *testing.T) {
		var logs logBuffer
		newServer(t, Options{ConfigPath: writeRefusalConfig(t, dir, "", "", healthPublic), Logger: logs.logger()})
		if want := `"msg":"configuration warning","warning":` + jsonString(audienceWarning); !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, logs.String())
		}
	})
}

// TestReloadRefusals: a reload whose configuration does not load, whose key sets cannot be
// built, or that changes the listeners is refused: the old configuration keeps serving, the
// refusal is logged and counted, and portcullis_config_last_reload_successful is 0 until a
// reload succeeds; a successful reload logs its warnings.
func TestReloadRefusals(t *testing.T) {
	dir := refusalDir(t)
	var logs logBuffer
	path := writeRefusalConfig(t, dir, "", withAudience, healthPublic)
	srv, _ := runWith(t, Options{ConfigPath: path, Logger: logs.logger()})
	st := &stack{srv: srv}
	front := func(p string) int {
		t.Helper()
		resp, err := http.Get("http://" + srv.Addr("http").String() + p)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	pki := newPKI(t)
	refusals := []struct {
		name, server, issuer, want string
	}{
		{"invalid rule", "", withAudience, `config: rules[0].match.paths[0]: "status" must start with "/"`},
		{"CA bundle without a certificate", "", withAudience + "\n    ca_file: ca.pem", "config: issuers[0].ca_file: \"{dir}/ca.pem\" holds no PEM certificate; write the CA certificates as PEM (\"-----BEGIN CERTIFICATE-----\" blocks)"},
		{"TLS added", "  tls: { cert_file: " + filepath.Join(pki.dir, "server.pem") + ", key_file: " + filepath.Join(pki.dir, "server-key.pem") + " }", withAudience,
			"server: listen addresses and TLS settings cannot change on reload; restart Portcullis"},
	}
	for i, c := range refusals {
		// Each refused configuration would also swap the public rule for another.
		rules := statusPublic
		if c.name == "invalid rule" {
			rules = strings.Replace(statusPublic, `"/status"`, `"status"`, 1)
		}
		writeRefusalConfig(t, dir, c.server, c.issuer, rules)
		err := srv.Reload()
		want := strings.ReplaceAll(c.want, "{dir}", dir)
		if err == nil || err.Error() != want {
			t.Errorf("%s: Reload: %v\nwant %s", c.name, err, want)
		}
		if got := gatheredLabel(t, st, "portcullis_config_reloads_total", "result", "error"); got != float64(i+1) {
			t.Errorf("%s: reloads{error} = %v, want %d", c.name, got, i+1)
		}
		if got := gathered(t, st, "portcullis_config_last_reload_successful"); got != 0 {
			t.Errorf("%s: last_reload_successful = %v", c.name, got)
		}
		if h, s := front("/healthz"), front("/status"); h != 200 || s != 403 {
			t.Errorf("%s: the old rules do not serve: /healthz %d, /status %d", c.name, h, s)
		}
		line := `"msg":"configuration reload refused; the previous configuration keeps serving","error":` + jsonString(want)
		if !strings.Contains(logs.String(), line) {
			t.Errorf("%s: log lacks %s", c.name, line)
		}
	}

	writeRefusalConfig(t, dir, "", "", statusPublic)
	if err := srv.Reload(); err != nil {
		t.Fatalf("good reload: %v", err)
	}
	if ok, fail := gatheredLabel(t, st, "portcullis_config_reloads_total", "result", "success"), gatheredLabel(t, st, "portcullis_config_reloads_total", "result", "error"); ok != 1 || fail != float64(len(refusals)) {
		t.Errorf("reloads: success %v, error %v", ok, fail)
	}
	if got := gathered(t, st, "portcullis_config_last_reload_successful"); got != 1 {
		t.Errorf("last_reload_successful = %v after a good reload", got)
	}
	if h, s := front("/healthz"), front("/status"); h != 403 || s != 200 {
		t.Errorf("the new rules do not serve: /healthz %d, /status %d", h, s)
	}
	for _, line := range []string{`"msg":"configuration reloaded","rules":1,"issuers":1`, `"msg":"configuration warning","warning":` + jsonString(audienceWarning)} {
		if !strings.Contains(logs.String(), line) {
			t.Errorf("log lacks %s", line)
		}
	}
}

// jsonString is s as encoding/json (and so slog's JSON handler) writes it.
func jsonString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// TestWatchOffWhenTheDirectoryIsGone: when the configuration's directory cannot be watched,
// Watch says so, tells how to reload instead, and returns.
func TestWatchOffWhenTheDirectoryIsGone(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "conf")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path, _ := writeFileConfig(t, dir, "  grpc_addr: \"127.0.0.1:0\"", "")
	var logs logBuffer
	srv := newServer(t, Options{ConfigPath: path, Logger: logs.logger()})
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { srv.Watch(context.Background()); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not return")
	}
	want := `"msg":"config file watching is off; reload with SIGHUP","error":` + jsonString("watch "+dir+": no such file or directory")
	if !strings.Contains(logs.String(), want) {
		t.Errorf("log lacks %s:\n%s", want, logs.String())
	}
}
