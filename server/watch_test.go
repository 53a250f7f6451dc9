package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/portcullis-authz/portcullis/internal/devidp"
)

// configMapVolume lays a configuration out as the kubelet's atomic writer does for a ConfigMap
// volume: dir/portcullis.yaml → ..data/portcullis.yaml, ..data → ..<timestamp>.
type configMapVolume struct {
	dir     string
	current string // the ..<timestamp> directory ..data points at
	n       int
}

// publish writes content as a new ..<timestamp> directory and swaps ..data to it: ..data_tmp
// is made to point at it and renamed over ..data; the previous directory is then removed.
func (v *configMapVolume) publish(t *testing.T, content string) {
	t.Helper()
	v.n++
	ts := fmt.Sprintf("..2026_01_01_00_00_%02d.%09d", v.n, v.n)
	if err := os.Mkdir(filepath.Join(v.dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v.dir, ts, "portcullis.yaml"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(ts, filepath.Join(v.dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(v.dir, "..data_tmp"), filepath.Join(v.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if v.current == "" {
		if err := os.Symlink(filepath.Join("..data", "portcullis.yaml"), filepath.Join(v.dir, "portcullis.yaml")); err != nil {
			t.Fatal(err)
		}
	} else if err := os.RemoveAll(filepath.Join(v.dir, v.current)); err != nil {
		t.Fatal(err)
	}
	v.current = ts
}

// every calls f every 50 ms until the returned stop is called; running is closed once f has
// run twice.
func every(t *testing.T, f func(i int) error) (running <-chan struct{}, stop func()) {
	t.Helper()
	done, twice := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-tick.C:
				if err := f(i); err != nil {
					t.Errorf("noise: %v", err)
					return
				}
				if i == 1 {
					close(twice)
				}
			}
		}
	}()
	var once sync.Once
	return twice, func() { once.Do(func() { close(done); wg.Wait() }) }
}

func writeNoise(path string) func(int) error {
	return func(i int) error { return os.WriteFile(path, []byte(fmt.Sprintf("line %d\n", i)), 0o600) }
}

// TestWatchAppliesAChangeWhateverElseHappens: while other files in the configuration's
// directory (or the file itself) change every 50 ms, a changed configuration is in force
// within 2 s, however it is written.
func TestWatchAppliesAChangeWhateverElseHappens(t *testing.T) {
	type layout struct {
		place  func(t *testing.T, content string) string // returns the path Portcullis reads
		change func(t *testing.T, content string)        // puts new content in place
		noise  func(i int) error                         // runs every 50 ms throughout
	}
	cases := []struct {
		name  string
		setup func(t *testing.T) layout
	}{
		{"rename over, a log file written next to it", func(t *testing.T) layout {
			dir := t.TempDir()
			path := filepath.Join(dir, "portcullis.yaml")
			return layout{
				place: func(t *testing.T, c string) string {
					if err := os.WriteFile(path, []byte(c), 0o600); err != nil {
						t.Fatal(err)
					}
					return path
				},
				change: func(t *testing.T, c string) { writeAtomically(t, path, c) },
				noise:  writeNoise(filepath.Join(dir, "portcullis.log")),
			}
		}},
		{"written in place, the file itself touched", func(t *testing.T) layout {
			path := filepath.Join(t.TempDir(), "portcullis.yaml")
			return layout{
				place: func(t *testing.T, c string) string {
					if err := os.WriteFile(path, []byte(c), 0o600); err != nil {
						t.Fatal(err)
					}
					return path
				},
				change: func(t *testing.T, c string) {
					if err := os.WriteFile(path, []byte(c), 0o600); err != nil {
						t.Fatal(err)
					}
				},
				noise: func(int) error { now := time.Now(); return os.Chtimes(path, now, now) },
			}
		}},
		{"ConfigMap ..data swap, a file written in the volume", func(t *testing.T) layout {
			v := &configMapVolume{dir: t.TempDir()}
			return layout{
				place: func(t *testing.T, c string) string {
					v.publish(t, c)
					return filepath.Join(v.dir, "portcullis.yaml")
				},
				change: v.publish,
				noise:  writeNoise(filepath.Join(v.dir, "other.log")),
			}
		}},
		{"symlink to a file in another directory, a log file written next to the target", func(t *testing.T) layout {
			linkDir, realDir := t.TempDir(), t.TempDir()
			real := filepath.Join(realDir, "real.yaml")
			return layout{
				place: func(t *testing.T, c string) string {
					if err := os.WriteFile(real, []byte(c), 0o600); err != nil {
						t.Fatal(err)
					}
					path := filepath.Join(linkDir, "portcullis.yaml")
					if err := os.Symlink(real, path); err != nil {
						t.Fatal(err)
					}
					return path
				},
				change: func(t *testing.T, c string) { writeAtomically(t, real, c) },
				noise:  writeNoise(filepath.Join(realDir, "real.log")),
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := tc.setup(t)
			var original string
			st := startStackAt(t, 0, func(t *testing.T, c string) string {
				original = c
				return l.place(t, c)
			})
			cw, err := st.srv.watchConfig()
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			watched := make(chan struct{})
			go func() { defer close(watched); cw.run(ctx) }()
			defer func() { cancel(); <-watched }()
			noisy, stopNoise := every(t, l.noise)
			defer stopNoise()

			alice := st.mint(t, jwa.RS256, devidp.Claims{"realm_access": map[string]any{"roles": []string{"user"}}})
			req := checkRequest("GET", "h", "/api/x", map[string]string{"authorization": "Bearer " + alice})
			status := func() int {
				resp, err := st.client.Check(ctx, req)
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				if resp.GetOkResponse() != nil {
					return 200
				}
				return int(resp.GetDeniedResponse().GetStatus().GetCode())
			}
			if got := status(); got != 200 {
				t.Fatalf("before the change: %d", got)
			}
			adminOnly := strings.Replace(original, "require: { claims: { email_verified: true } }", "require: { any_roles: [admin] }", 1)
			if adminOnly == original {
				t.Fatal("test config changed: cannot find the api rule")
			}
			<-noisy
			l.change(t, adminOnly)
			changed := time.Now()
			for status() != 403 {
				if time.Since(changed) > 2*time.Second {
					t.Fatalf("the changed configuration is not in force 2 s after it was written (reloads: %v success, %v error)",
						gatheredLabel(t, st, "portcullis_config_reloads_total", "result", "success"),
						gatheredLabel(t, st, "portcullis_config_reloads_total", "result", "error"))
				}
				time.Sleep(10 * time.Millisecond)
			}
			t.Logf("in force %s after the change", time.Since(changed).Round(time.Millisecond))
			stopNoise()
			if got := gatheredLabel(t, st, "portcullis_config_reloads_total", "result", "success"); got != 1 {
				t.Errorf("successful reloads = %v, want 1", got)
			}
			if got := gatheredLabel(t, st, "portcullis_config_reloads_total", "result", "error"); got != 0 {
				t.Errorf("refused reloads = %v, want 0", got)
			}
		})
	}
}

// TestWatchSeesAChangeMadeBeforeItStarted: a configuration changed after the server loaded it
// but before the watch began is applied when the watch starts, though no event reports it.
func TestWatchSeesAChangeMadeBeforeItStarted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "portcullis.yaml")
	var original string
	st := startStackAt(t, 0, func(t *testing.T, c string) string {
		original = c
		if err := os.WriteFile(path, []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	})
	adminOnly := strings.Replace(original, "require: { claims: { email_verified: true } }", "require: { any_roles: [admin] }", 1)
	if adminOnly == original {
		t.Fatal("test config changed: cannot find the api rule")
	}
	writeAtomically(t, path, adminOnly)
	cw, err := st.srv.watchConfig()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	watched := make(chan struct{})
	go func() { defer close(watched); cw.run(ctx) }()
	defer func() { cancel(); <-watched }()
	alice := st.mint(t, jwa.RS256, devidp.Claims{"realm_access": map[string]any{"roles": []string{"user"}}})
	req := checkRequest("GET", "h", "/api/x", map[string]string{"authorization": "Bearer " + alice})
	started := time.Now()
	for {
		resp, err := st.client.Check(ctx, req)
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		if resp.GetDeniedResponse().GetStatus().GetCode() == 403 {
			break
		}
		if time.Since(started) > 2*time.Second {
			t.Fatal("the change made before the watch started is not in force 2 s after it started")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
