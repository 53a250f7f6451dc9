package server

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// watching runs the configuration watch of srv until the test ends; the returned stop ends it
// and waits, after which cw may be read.
func watching(t *testing.T, srv *Server) (cw *configWatch, stop func()) {
	t.Helper()
	cw, err := srv.watchConfig()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); cw.run(ctx) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return cw, stop
}

// frontStatus is the HTTP forward-auth answer for a request line path.
func frontStatus(t *testing.T, srv *Server, path string) int {
	t.Helper()
	resp, err := http.Get("http://" + srv.Addr("http").String() + path)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func waitStatus(t *testing.T, srv *Server, path string, want int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for frontStatus(t, srv, path) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered %d", path, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWatchIgnoresUnchangedContent: a write that leaves the file's content as it was (a
// ConfigMap resync, an editor saving without change) does not reload; a real change then does,
// once.
func TestWatchIgnoresUnchangedContent(t *testing.T) {
	dir := refusalDir(t)
	path := writeRefusalConfig(t, dir, "", withAudience, healthPublic)
	srv, _ := runWith(t, Options{ConfigPath: path})
	st := &stack{srv: srv}
	watching(t, srv)
	same, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, same, 0o600); err != nil {
		t.Fatal(err)
	}
	// The watch has no clock to inject: let its debounce pass, twice over.
	time.Sleep(2 * watchDebounce)
	if got := gatheredLabel(t, st, "portcullis_config_reloads_total", "result", "success"); got != 0 {
		t.Errorf("an unchanged file reloaded %v times", got)
	}
	writeRefusalConfig(t, dir, "", withAudience, statusPublic)
	waitStatus(t, srv, "/status", 200)
	if got := gatheredLabel(t, st, "portcullis_config_reloads_total", "result", "success"); got != 1 {
		t.Errorf("reloads = %v, want 1", got)
	}
}

// TestWatchFollowsARetargetedSymlink: when the configuration's symlink is pointed at a file in
// another directory, the new file's content is applied and the watch moves from the old
// target's directory to the new one.
func TestWatchFollowsARetargetedSymlink(t *testing.T) {
	keysDir := refusalDir(t)
	keys := filepath.Join(keysDir, "keys.json")
	linkDir, oldDir, newDir := t.TempDir(), t.TempDir(), t.TempDir()
	content := func(rules string) []byte {
		return []byte(strings.Replace(string(mustRead(t, writeRefusalConfig(t, t.TempDir(), "", withAudience, rules))), "jwks_file: keys.json", "jwks_file: "+keys, 1))
	}
	if err := os.WriteFile(filepath.Join(oldDir, "a.yaml"), content(healthPublic), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(newDir, "b.yaml"), content(statusPublic), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(linkDir, "portcullis.yaml")
	if err := os.Symlink(filepath.Join(oldDir, "a.yaml"), path); err != nil {
		t.Fatal(err)
	}
	srv, _ := runWith(t, Options{ConfigPath: path})
	cw, stop := watching(t, srv)
	if got := frontStatus(t, srv, "/healthz"); got != 200 {
		t.Fatalf("before: /healthz %d", got)
	}
	tmp := filepath.Join(linkDir, "portcullis.yaml.tmp")
	if err := os.Symlink(filepath.Join(newDir, "b.yaml"), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, srv, "/status", 200)
	// The watch moved before the reload it made: the old directory is no longer watched.
	want := []string{linkDir, newDir}
	slices.Sort(want)
	watched := cw.w.WatchList()
	slices.Sort(watched)
	if !slices.Equal(watched, want) {
		t.Errorf("watching %v, want %v", watched, want)
	}
	stop()
	if !slices.Equal(cw.scope.dirs, []string{linkDir, newDir}) {
		t.Errorf("scope %v, want [%s %s]", cw.scope.dirs, linkDir, newDir)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
