package benchprofile

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/pprof/profile"
)

// spin burns d of this process's CPU time (not wall time: a busy machine gives it less) in a
// function the profile must show.
//
//go:noinline
func spin(d time.Duration) int {
	n := 0
	for start := processCPU(); processCPU()-start < d; {
		for i := range 100000 {
			n += i * i
		}
	}
	return n
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestListenTogglesOnTheSignal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cpu.prof")
	stop := Listen(path, syscall.SIGUSR2)
	defer stop()

	kill := func() {
		t.Helper()
		if err := syscall.Kill(os.Getpid(), syscall.SIGUSR2); err != nil {
			t.Fatal(err)
		}
	}
	kill() // start
	waitFor(t, path+".partial")
	spin(300 * time.Millisecond)
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the profile is at its path before the second signal: %v", err)
	}
	kill() // stop: the profile moves to its path
	waitFor(t, path)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := profile.Parse(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("the profile does not parse: %v", err)
	}
	if len(p.SampleType) == 0 || p.SampleType[len(p.SampleType)-1].Type != "cpu" {
		t.Fatalf("sample types %v, want a CPU profile", p.SampleType)
	}
	found := false
	for _, s := range p.Sample {
		for _, l := range s.Location {
			for _, ln := range l.Line {
				found = found || strings.HasSuffix(ln.Function.Name, "benchprofile.spin")
			}
		}
	}
	if !found {
		t.Errorf("the profile has %d samples, none in spin", len(p.Sample))
	}
	if _, err := os.Stat(path + ".partial"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the partial file is left: %v", err)
	}

	// A third signal starts again; stop then discards the unfinished profile.
	kill()
	waitFor(t, path+".partial")
	stop()
	if _, err := os.Stat(path + ".partial"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stop left the unfinished profile: %v", err)
	}
}

func TestFromEnvWithoutEnvDoesNothing(t *testing.T) {
	t.Setenv(Env, "")
	var b bytes.Buffer
	FromEnv(&b)
	if b.Len() != 0 {
		t.Errorf("FromEnv without %s wrote %q", Env, b.String())
	}
}

func waitFor(t *testing.T, path string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return
		}
	}
	t.Fatalf("%s never appeared", path)
}

// TestOnlyTheTaggedBuildOfPortcullisHasIt: the default build of cmd/portcullis links no
// profiling code of this package; the benchprofile build does.
func TestOnlyTheTaggedBuildOfPortcullisHasIt(t *testing.T) {
	const pkg = "github.com/portcullis-authz/portcullis/internal/benchprofile"
	deps := func(tags ...string) string {
		args := append([]string{"list", "-deps"}, tags...)
		out, err := exec.Command("go", append(args, "github.com/portcullis-authz/portcullis/cmd/portcullis")...).CombinedOutput()
		if err != nil {
			t.Fatalf("go list: %v\n%s", err, out)
		}
		return string(out)
	}
	if strings.Contains(deps(), pkg+"\n") {
		t.Errorf("the default build of cmd/portcullis imports %s", pkg)
	}
	if !strings.Contains(deps("-tags", "benchprofile"), pkg+"\n") {
		t.Errorf("the benchprofile build of cmd/portcullis does not import %s", pkg)
	}
}
