// Package benchprofile lets a benchmark harness take a CPU profile of a server process over a
// window of its choosing, without an HTTP endpoint: while the process runs, each delivery of
// the signal toggles the profiler. The first starts a CPU profile, the next stops it and renames
// the finished profile to its path, so that the harness can poll for the path and never reads a
// partial file; the one after starts again, overwriting it.
//
// It serves bench/peers only: its do-nothing server calls FromEnv, and so does Portcullis, but
// only in a build with the benchprofile tag (cmd/portcullis/benchprofile.go), so that the
// default build has no profiling code at all.
package benchprofile

import (
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"runtime/pprof"
	"sync"
	"syscall"
)

// Env names the file FromEnv profiles into; unset or empty, FromEnv does nothing.
const Env = "PORTCULLIS_BENCH_CPUPROFILE"

// Ready starts the line FromEnv writes once the signal is handled. A harness waits for it in
// the process's output before it signals: SIGUSR1 ends a process that does not handle it.
const Ready = "benchprofile: SIGUSR1 toggles a CPU profile into "

// FromEnv listens for SIGUSR1 to toggle a CPU profile into the file Env names, and says so on
// w, if Env is set.
func FromEnv(w io.Writer) {
	if path := os.Getenv(Env); path != "" {
		Listen(path, syscall.SIGUSR1)
		fmt.Fprintf(w, "%s%s\n", Ready, path)
	}
}

// Listen toggles a CPU profile into path on each sig until the returned stop is called (stop
// ends a profile still running without writing it, and returns once it has). Failures are logged: a profile is a
// measurement aid, never a reason to stop serving.
func Listen(path string, sig os.Signal) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sig)
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		var f *os.File
		for {
			select {
			case <-done:
				if f != nil {
					pprof.StopCPUProfile()
					_ = f.Close()
					_ = os.Remove(f.Name())
				}
				return
			case <-ch:
			}
			if f == nil {
				var err error
				if f, err = start(path); err != nil {
					log.Printf("benchprofile: %v", err)
				}
				continue
			}
			pprof.StopCPUProfile()
			if err := finish(f, path); err != nil {
				log.Printf("benchprofile: %v", err)
			}
			f = nil
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			signal.Stop(ch)
			close(done)
			<-exited
		})
	}
}

// start begins a CPU profile into a temporary file beside path.
func start(path string) (*os.File, error) {
	f, err := os.Create(path + ".partial")
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		_ = os.Remove(f.Name())
		return nil, fmt.Errorf("start cpu profile: %w", err)
	}
	return f, nil
}

// finish closes a stopped profile's file and moves it to path.
func finish(f *os.File, path string) error {
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
