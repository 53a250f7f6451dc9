//go:build unix

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDevPrintedCommandsRunVerbatim starts `go run ./cmd/portcullis dev` from the root of the
// checkout, as the README's quick start says, takes every command the banner prints and runs
// it as printed, in a shell holding the printed exports, and checks each answer. grpcurl and
// curl are run where they are on PATH; without them their commands are skipped, saying so.
func TestDevPrintedCommandsRunVerbatim(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command on PATH")
	}
	shell, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh on PATH")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	dev := exec.Command("go", "run", "./cmd/portcullis", "dev", "--addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0")
	dev.Dir = root
	dev.Env = append(os.Environ(), "PORTCULLIS_CONFIG=")
	dev.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // go run and its child, stopped together
	var logs syncBuffer
	dev.Stderr = &logs
	stdout, err := dev.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	banner := make(chan string, 1)
	go func() {
		var b strings.Builder
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "(the configuration file lives as long as this process") {
				banner <- b.String()
				break
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		exited <- dev.Wait()
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-dev.Process.Pid, syscall.SIGINT) // the process group this test started
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-dev.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	var text string
	select {
	case text = <-banner:
	case err := <-exited:
		t.Fatalf("dev exited before its banner (%v):\n%s", err, logs.String())
	case <-time.After(5 * time.Minute): // the first go run on a busy machine compiles everything
		t.Fatalf("no banner; stderr:\n%s", logs.String())
	}

	exports, commands := bannerCommands(text)
	if len(exports) != 4 {
		t.Errorf("exports: %d, want 4 (alice, bob, carol, expired):\n%s", len(exports), text)
	}
	if !strings.Contains(text, "grpcurl: go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4") {
		t.Error("the banner does not say how to get grpcurl")
	}
	// Every printed command is known here, with the answer it must get.
	type answer struct {
		exit     int
		contains []string
	}
	want := map[string]answer{
		"curl -s http://":                {0, []string{"ready\n"}},
		"go run ./cmd/portcullis check ": {1, []string{"decision:  DENY (HTTP 403)\n", "rule:      orders-write\n", "  - role \"orders-api:writer\"\n"}},
		"curl -i -H ":                    {0, []string{"HTTP/1.1 200 OK", "X-User-Name: alice"}},
		"grpcurl -plaintext ":            {0, []string{`"okResponse"`, `"x-user-name"`, `"alice"`}},
	}
	ran := map[string]bool{}
	for _, c := range commands {
		var key string
		for k := range want {
			if strings.HasPrefix(c, k) {
				key = k
			}
		}
		w, ok := want[key]
		if !ok {
			t.Errorf("the banner prints a command this test does not know: %s", c)
			continue
		}
		ran[key] = true
		tool := strings.Fields(c)[0]
		if _, err := exec.LookPath(tool); err != nil {
			t.Logf("SKIPPED (no %s on PATH): %s", tool, c)
			continue
		}
		script := strings.Join(exports, "\n") + "\n" + c + "\n"
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		cmd := exec.CommandContext(ctx, shell, "-c", script)
		cmd.Dir = root // where the banner says the go run command works
		cmd.Env = append(os.Environ(), "PORTCULLIS_CONFIG=")
		var out, errs bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errs
		err := cmd.Run()
		cancel()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Errorf("%s: %v", c, err)
			continue
		}
		if code != w.exit {
			t.Errorf("%s\nexit %d, want %d; stdout:\n%s\nstderr:\n%s", c, code, w.exit, out.String(), errs.String())
			continue
		}
		for _, s := range w.contains {
			if !strings.Contains(out.String(), s) {
				t.Errorf("%s\nanswer lacks %q:\n%s", c, s, out.String())
			}
		}
	}
	for key := range want {
		if !ran[key] {
			t.Errorf("the banner no longer prints the command starting %q", key)
		}
	}
}

// bannerCommands returns the export lines and the commands of dev's banner: the indented
// lines that are neither comments nor exports, below "Tokens".
func bannerCommands(banner string) (exports, commands []string) {
	for _, line := range strings.Split(banner, "\n") {
		l := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(l, "export TOKEN_"):
			exports = append(exports, l)
		case strings.HasPrefix(line, "    ") && !strings.HasPrefix(l, "#") && l != "":
			commands = append(commands, l)
		}
	}
	return exports, commands
}
