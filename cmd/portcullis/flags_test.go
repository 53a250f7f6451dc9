package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestFlagErrors: a value a command would refuse is refused while the command line is read, by
// every command that takes the flag, with the flag and the text as typed; never as the
// configuration field it would have gone to.
func TestFlagErrors(t *testing.T) {
	path, _ := checkEnv(t)
	const level = `portcullis: --log-level "bogus": not one of debug, info, warn, error`
	const format = `portcullis: --log-format "yaml": not one of text, json`
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"validate log level", []string{"validate", "--config", path, "--log-level", "bogus"}, level},
		{"serve log level", []string{"serve", "--config", path, "--log-level", "bogus"}, level},
		{"check log level", []string{"check", "--config", path, "--path", "/", "--log-level", "bogus"}, level},
		{"test log level", []string{"test", "--log-level", "bogus", "policy_test.yaml"}, level},
		{"dev log level", []string{"dev", "--log-level", "bogus"}, level},
		{"version log level", []string{"--log-level", "bogus", "version"}, level},
		{"validate log format", []string{"validate", "--config", path, "--log-format", "yaml"}, format},
		{"dev log format", []string{"dev", "--log-format=yaml"}, format},
		{"dev negative ttl", []string{"dev", "--ttl", "-1h"},
			`portcullis: --ttl "-1h": must be positive: the printed tokens would be expired already (e.g. 12h)`},
		{"dev zero ttl", []string{"dev", "--ttl=0s"},
			`portcullis: --ttl "0s": must be positive: the printed tokens would be expired already (e.g. 12h)`},
		{"dev ttl without unit", []string{"dev", "--ttl", "12"},
			`portcullis: --ttl "12": not a duration; write it with a unit, e.g. 12h`},
		{"dev addr garbage", []string{"dev", "--addr", "garbage"},
			`portcullis: --addr "garbage": not host:port; write e.g. 127.0.0.1:9191 (127.0.0.1:0 takes a free port)`},
		{"dev addr empty", []string{"dev", "--addr", ""},
			`portcullis: --addr "": not host:port; write e.g. 127.0.0.1:9191 (127.0.0.1:0 takes a free port)`},
		{"dev http addr port", []string{"dev", "--http-addr", "127.0.0.1:http"},
			`portcullis: --http-addr "127.0.0.1:http": not host:port; write e.g. 127.0.0.1:9191 (127.0.0.1:0 takes a free port, or "" to turn it off)`},
		{"dev admin addr port range", []string{"dev", "--admin-addr", "127.0.0.1:70000"},
			`portcullis: --admin-addr "127.0.0.1:70000": not host:port; write e.g. 127.0.0.1:9191 (127.0.0.1:0 takes a free port, or "" to turn it off)`},
		{"dev addr twice", []string{"dev", "--addr", "127.0.0.1:9555", "--admin-addr", "127.0.0.1:9555"},
			`portcullis: --admin-addr "127.0.0.1:9555": already used by --addr; give each listener its own port`},
		{"check wait zero", []string{"check", "--config", path, "--path", "/", "--wait", "0"},
			`portcullis: --wait "0": must be positive: no key set could be fetched in no time (e.g. 10s)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errs bytes.Buffer
			if code := run(context.Background(), c.args, strings.NewReader(""), &out, &errs); code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			if got := strings.TrimSuffix(errs.String(), "\n"); got != c.want {
				t.Errorf("stderr\n got: %s\nwant: %s", got, c.want)
			}
			if out.Len() != 0 {
				t.Errorf("stdout %q", out.String())
			}
		})
	}
}

// TestDevInvokedAs: the banner spells portcullis commands the way that runs when pasted.
func TestDevInvokedAs(t *testing.T) {
	for _, c := range []struct{ arg0, exe, want string }{
		{"/tmp/go-build1160169948/b001/exe/portcullis", "/tmp/go-build1160169948/b001/exe/portcullis", "go run ./cmd/portcullis"},
		{"portcullis", "/root/.cache/go-build/x/exe/portcullis", "go run ./cmd/portcullis"},
		{"bin/portcullis", "/work/portcullis/bin/portcullis", "bin/portcullis"},
		{"portcullis", "/usr/local/bin/portcullis", "portcullis"},
		{"/opt/my tools/portcullis", "/opt/my tools/portcullis", `'/opt/my tools/portcullis'`},
		{"", "", "portcullis"},
	} {
		if got := invokedAs(c.arg0, c.exe); got != c.want {
			t.Errorf("invokedAs(%q, %q) = %q, want %q", c.arg0, c.exe, got, c.want)
		}
	}
}
