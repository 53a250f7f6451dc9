// Command portcullis is an external authorization server for Envoy and Istio: it verifies bearer
// tokens against the issuers' published keys and applies route-to-role rules.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// version is stamped at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

// exitError carries a process exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes the command line and returns the exit code; cancelling ctx stops serve and dev.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRoot(stdin, stdout, stderr)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	code, shown := 2, err
	var ee *exitError
	if errors.As(err, &ee) {
		code, shown = ee.code, ee.err
	}
	if shown != nil {
		fmt.Fprintln(stderr, "portcullis:", shown)
		if wantsJSON(cmd) && !errors.As(shown, new(reportedError)) {
			writeJSONError(stdout, shown, cmd.Name() != "test") // test --json writes JSON Lines
		}
	}
	return code
}

// globals are the flags every command shares.
type globals struct {
	logLevel  string
	logFormat string
	stdin     io.Reader
	stdout    io.Writer
	stderr    io.Writer
}

func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdin: stdin, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "portcullis",
		Short: "External authorization for Envoy and Istio: bearer tokens verified, route-to-role rules applied",
		Long: `Portcullis answers Envoy's ext_authz checks (gRPC, envoy.service.auth.v3) and HTTP forward-auth
requests (nginx auth_request, Traefik, Caddy): it verifies the bearer token against the issuer's
published keys, applies route-to-role rules, and allows with identity headers (x-user-id, ...)
or denies with 401/403.

Start with "portcullis dev" for a local playground that needs no identity provider.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(flagError)
	logLevelFlag(root.PersistentFlags(), &g.logLevel)
	logFormatFlag(root.PersistentFlags(), &g.logFormat)
	root.AddCommand(newServeCmd(g), newValidateCmd(g), newCheckCmd(g), newTestCmd(g), newDevCmd(g), newVersionCmd(g))
	return root
}

// logger builds the process logger from the global flags. Logs go to stderr.
func (g *globals) logger() (*slog.Logger, error) {
	level, err := parseLogLevel(g.logLevel)
	if err != nil {
		return nil, &exitError{2, err}
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(g.logFormat) {
	case "json":
		return slog.New(slog.NewJSONHandler(g.stderr, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(g.stderr, opts)), nil
	default:
		return nil, &exitError{2, fmt.Errorf("--log-format %q: not one of text, json", g.logFormat)}
	}
}

// configFlag adds --config, defaulting to $PORTCULLIS_CONFIG.
func configFlag(cmd *cobra.Command, dst *string) {
	cmd.Flags().StringVar(dst, "config", os.Getenv("PORTCULLIS_CONFIG"), "configuration file (default $PORTCULLIS_CONFIG)")
}

func requireConfig(path string) error {
	if path == "" {
		return &exitError{2, errors.New("no configuration: pass --config FILE or set PORTCULLIS_CONFIG")}
	}
	return nil
}

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(g.stdout, "portcullis %s\n", version)
			return nil
		},
	}
}
