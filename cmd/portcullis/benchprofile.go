//go:build benchprofile

// This file is compiled only with -tags benchprofile, which `make bench-peers` passes when it
// builds bin/portcullis-bench: the default build has no profiling code and no pprof endpoint.
// Started with PORTCULLIS_BENCH_CPUPROFILE naming a file, such a build toggles a CPU profile
// into that file on each SIGUSR1 (the first starts it, the next writes it), so that the
// harness profiles exactly the slice it chooses, and says so on stderr at start, which is how
// bench/peers knows that the binary it was given can be profiled.

package main

import (
	"os"

	"github.com/portcullis-authz/portcullis/internal/benchprofile"
)

func init() { benchprofile.FromEnv(os.Stderr) }
