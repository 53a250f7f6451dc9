package server

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watchDebounce is how long after the first event that can concern the configuration the file
// is read again: long enough to gather the burst of events an editor or a ConfigMap update
// makes, and never pushed back by later events, so a reload cannot be starved.
const watchDebounce = 250 * time.Millisecond

// The kubelet's atomic writer (ConfigMap and Secret volumes) updates a volume by writing a new
// ..<timestamp> directory, pointing a ..data_tmp symlink at it and renaming that over ..data;
// each file of the volume is a symlink through ..data, and is itself never touched.
const (
	kubeletDataLink    = "..data"
	kubeletDataLinkTmp = "..data_tmp"
)

// Watch reloads the configuration when its file changes, until ctx is done. It watches the
// file's directory rather than the file, so that editors' rename-over and Kubernetes' ConfigMap
// symlink swap are both seen, and, when the file is a symlink to another directory, that
// directory too. Only events on the file's name, the target's name and the kubelet's ..data
// links count; a reload happens only when the file's content really changed.
func (s *Server) Watch(ctx context.Context) {
	cw, err := s.watchConfig()
	if err != nil {
		s.log.Warn("config file watching is off; reload with SIGHUP", "error", err)
		return
	}
	cw.run(ctx)
}

// configWatch is a started watch of the configuration file.
type configWatch struct {
	s     *Server
	path  string // absolute
	w     *fsnotify.Watcher
	scope watchScope
	last  []byte // the content last seen
}

// watchScope is what a configWatch listens to.
type watchScope struct {
	dirs     []string        // watched directories
	relevant map[string]bool // paths (directory as watched + name) whose events count
}

// scopeOf finds the directories and names that can concern the file at path: its own
// directory, and, if it is a symlink out of it, the directory of its final target (or, when
// the target lies in a kubelet ..<timestamp> directory, the volume holding it, where ..data is
// swapped).
func scopeOf(path string) watchScope {
	sc := watchScope{relevant: map[string]bool{}}
	add := func(dir, name string) {
		if !slices.Contains(sc.dirs, dir) {
			sc.dirs = append(sc.dirs, dir)
		}
		for _, n := range []string{name, kubeletDataLink, kubeletDataLinkTmp} {
			sc.relevant[filepath.Join(dir, n)] = true
		}
	}
	dir := filepath.Dir(path)
	add(dir, filepath.Base(path))
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return sc // missing or dangling: its own directory's events will say when it is back
	}
	tdir := filepath.Dir(target)
	if strings.HasPrefix(filepath.Base(tdir), "..") {
		tdir = filepath.Dir(tdir)
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil && real == tdir {
		return sc // the same directory under another name (a ConfigMap volume, a symlinked parent)
	}
	add(tdir, filepath.Base(target))
	return sc
}

// watchConfig starts watching; run then serves the events.
func (s *Server) watchConfig() (*configWatch, error) {
	path, err := filepath.Abs(s.opts.ConfigPath)
	if err != nil {
		return nil, err
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	if err := w.Add(dir); err != nil {
		w.Close()
		return nil, fmt.Errorf("watch %s: %w", dir, err)
	}
	cw := &configWatch{s: s, path: path, w: w, scope: watchScope{dirs: []string{dir}}}
	cw.rescope()
	// The content the serving configuration was parsed from, not the file as it is now: a
	// change written between the load and the watch must still be seen.
	s.mu.Lock()
	cw.last = s.cfg.Source
	s.mu.Unlock()
	return cw, nil
}

// rescope follows the file's symlink again and moves the watches if its target's directory
// changed. The file's own directory is always the first and stays watched; another that cannot
// be watched is left out, with a warning.
func (cw *configWatch) rescope() {
	next := scopeOf(cw.path)
	var dirs []string
	for _, d := range next.dirs {
		if slices.Contains(cw.scope.dirs, d) {
			dirs = append(dirs, d)
			continue
		}
		if err := cw.w.Add(d); err != nil {
			cw.s.log.Warn("config file watcher: cannot watch a directory; reload with SIGHUP if the file changes there", "dir", d, "error", err)
			continue
		}
		dirs = append(dirs, d)
	}
	for _, d := range cw.scope.dirs {
		if !slices.Contains(next.dirs, d) {
			_ = cw.w.Remove(d) // gone already when the directory was deleted
		}
	}
	next.dirs = dirs
	cw.scope = next
}

// run serves the watcher's events until ctx is done, then closes it.
func (cw *configWatch) run(ctx context.Context) {
	defer cw.w.Close()
	var due <-chan time.Time // armed by the first relevant event; later ones do not push it back
	if now, err := os.ReadFile(cw.path); err == nil && !bytes.Equal(now, cw.last) {
		due = time.After(watchDebounce) // changed between the load and the watch: no event will say so
	}
	for {
		select {
		case <-ctx.Done():
			return
		case err, ok := <-cw.w.Errors:
			if !ok {
				return
			}
			cw.s.log.Warn("config file watcher", "error", err)
		case ev, ok := <-cw.w.Events:
			if !ok {
				return
			}
			if due == nil && cw.scope.relevant[filepath.Clean(ev.Name)] {
				due = time.After(watchDebounce)
			}
		case <-due:
			due = nil
			cw.rescope()
			now, err := os.ReadFile(cw.path)
			if err != nil || bytes.Equal(now, cw.last) {
				continue // mid-swap or unchanged; a later event arms the timer again
			}
			cw.last = now
			_ = cw.s.Reload()
		}
	}
}
