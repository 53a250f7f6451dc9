package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/portcullis-authz/portcullis/internal/devidp"
)

// writeAtomically replaces path the way editors and ConfigMap updates do: write aside, rename over.
func writeAtomically(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestReloadUnderLoad replaces the file with a valid, an invalid and a valid configuration while
// Check calls stream: no call fails, and the decision switches exactly when a valid file lands.
func TestReloadUnderLoad(t *testing.T) {
	st := startStack(t, 100)
	path := st.srv.opts.ConfigPath
	original, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go st.srv.Watch(ctx)

	alice := st.mint(t, jwa.RS256, devidp.Claims{"realm_access": map[string]any{"roles": []string{"user"}}})
	req := checkRequest("GET", "h", "/api/x", map[string]string{"authorization": "Bearer " + alice})

	var failed, calls atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := st.client.Check(ctx, req)
				calls.Add(1)
				if err != nil || (resp.GetOkResponse() == nil && resp.GetDeniedResponse() == nil) {
					failed.Add(1)
				}
			}
		}()
	}
	status := func() int32 {
		resp, err := st.client.Check(ctx, req)
		if err != nil {
			t.Fatalf("Check failed: %v", err)
		}
		if resp.GetOkResponse() != nil {
			return 200
		}
		return int32(resp.GetDeniedResponse().GetStatus().GetCode())
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	reloads := func(result string) float64 {
		return gatheredLabel(t, st, "portcullis_config_reloads_total", "result", result)
	}

	if got := status(); got != 200 {
		t.Fatalf("before reload: %d", got)
	}
	// 1. valid: the api rule now needs the admin role.
	adminOnly := strings.Replace(string(original), "require: { claims: { email_verified: true } }", "require: { any_roles: [admin] }", 1)
	if adminOnly == string(original) {
		t.Fatal("test config changed: cannot find the api rule")
	}
	writeAtomically(t, path, adminOnly)
	waitFor("the admin-only configuration", func() bool { return status() == 403 })
	if reloads("success") != 1 {
		t.Errorf("reloads success = %v", reloads("success"))
	}
	// 2. invalid: refused, the admin-only configuration keeps serving.
	writeAtomically(t, path, adminOnly+"\nunknown_key: 1\n")
	waitFor("the refused reload to be counted", func() bool { return reloads("error") == 1 })
	if got := status(); got != 403 {
		t.Errorf("after an invalid file the decision changed to %d", got)
	}
	if ok := gathered(t, st, "portcullis_config_last_reload_successful"); ok != 0 {
		t.Errorf("portcullis_config_last_reload_successful = %v after a refused reload", ok)
	}
	// 3. valid again.
	writeAtomically(t, path, string(original))
	waitFor("the original configuration", func() bool { return status() == 200 })
	if ok := gathered(t, st, "portcullis_config_last_reload_successful"); ok != 1 {
		t.Errorf("portcullis_config_last_reload_successful = %v after a good reload", ok)
	}
	// SIGHUP-style reload of an unchanged file succeeds too.
	if err := st.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Errorf("%d of %d Check calls failed during reloads", failed.Load(), calls.Load())
	}
	if reloads("success") != 3 || reloads("error") != 1 {
		t.Errorf("reloads: success %v error %v", reloads("success"), reloads("error"))
	}
	if calls.Load() < 10 {
		t.Errorf("only %d calls streamed", calls.Load())
	}
}

func TestReloadRefusesListenerChanges(t *testing.T) {
	st := startStack(t, 0)
	path := st.srv.opts.ConfigPath
	b, _ := os.ReadFile(path)
	writeAtomically(t, path, strings.Replace(string(b), `admin_addr: "127.0.0.1:0"`, `admin_addr: "127.0.0.1:1"`, 1))
	err := st.srv.Reload()
	if err == nil || !strings.Contains(err.Error(), "cannot change on reload") {
		t.Errorf("err = %v", err)
	}
}

// gatheredLabel returns the value of the series of name whose label has value.
func gatheredLabel(t *testing.T, st *stack, name, label, value string) float64 {
	t.Helper()
	families, err := st.srv.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue() + m.GetGauge().GetValue()
				}
			}
		}
	}
	panic(fmt.Sprintf("no series %s{%s=%q}", name, label, value))
}
