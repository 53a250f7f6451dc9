package server

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watchDebounce gathers the bursts of events an editor or a ConfigMap update makes.
const watchDebounce = 250 * time.Millisecond

// Watch reloads the configuration when its file changes, until ctx is done. It watches the
// file's directory rather than the file, so that editors' rename-over and Kubernetes' ConfigMap
// symlink swap (..data → a new timestamped directory) are both seen; a reload happens only when
// the file's content really changed.
func (s *Server) Watch(ctx context.Context) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		s.log.Warn("config file watching is off; reload with SIGHUP", "error", err)
		return
	}
	defer w.Close()
	dir := filepath.Dir(s.opts.ConfigPath)
	if err := w.Add(dir); err != nil {
		s.log.Warn("config file watching is off; reload with SIGHUP", "dir", dir, "error", err)
		return
	}
	last, _ := os.ReadFile(s.opts.ConfigPath)
	var timer <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			s.log.Warn("config file watcher", "error", err)
		case _, ok := <-w.Events:
			if !ok {
				return
			}
			// Any event in the directory may be the file (symlinks hide which); the content
			// comparison below decides.
			timer = time.After(watchDebounce)
		case <-timer:
			timer = nil
			now, err := os.ReadFile(s.opts.ConfigPath)
			if err != nil || bytes.Equal(now, last) {
				continue // mid-swap or unchanged
			}
			last = now
			_ = s.Reload()
		}
	}
}
