package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/portcullis-authz/portcullis/config"
	"github.com/portcullis-authz/portcullis/server"
)

func newServeCmd(g *globals) *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "serve --config FILE",
		Short: "Run the servers (gRPC ext_authz, HTTP forward-auth, admin)",
		Long: `Run the servers: Envoy ext_authz v3 gRPC (and grpc.health.v1) on server.grpc_addr, HTTP
forward-auth on server.http_addr, and /metrics /healthz /readyz (and POST /admin/jwks/refresh)
on server.admin_addr.
The configuration is reloaded on SIGHUP and when the file changes; a configuration that does
not validate is refused and the previous one keeps serving. SIGTERM or SIGINT shut down
gracefully: in-flight checks finish first.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireConfig(path); err != nil {
				return err
			}
			log, err := g.logger()
			if err != nil {
				return err
			}
			srv, err := server.New(server.Options{ConfigPath: path, Logger: log})
			if err != nil {
				return &exitError{2, err}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			go func() {
				for {
					select {
					case <-hup:
						_ = srv.Reload()
					case <-ctx.Done():
						return
					}
				}
			}()
			if err := srv.Listen(); err != nil {
				return &exitError{2, err}
			}
			go srv.Watch(ctx)
			if err := srv.Run(ctx); err != nil {
				return &exitError{1, err}
			}
			return nil
		},
	}
	configFlag(cmd, &path)
	return cmd
}

func newValidateCmd(g *globals) *cobra.Command {
	var path string
	var strict bool
	cmd := &cobra.Command{
		Use:   "validate --config FILE",
		Short: "Parse and compile the configuration; report every error with its field path (no network)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireConfig(path); err != nil {
				return err
			}
			cfg, err := config.Load(path)
			if err != nil {
				return &exitError{1, err}
			}
			for _, w := range cfg.Warnings {
				fmt.Fprintln(g.stdout, "warning:", w)
			}
			if strict && len(cfg.Warnings) > 0 {
				return &exitError{1, fmt.Errorf("%d warning(s) and --strict", len(cfg.Warnings))}
			}
			fmt.Fprintf(g.stdout, "%s: valid (%d issuer(s), %d rule(s))\n", path, len(cfg.Issuers), cfg.RuleSet.Len())
			return nil
		},
	}
	configFlag(cmd, &path)
	cmd.Flags().BoolVar(&strict, "strict", false, "treat warnings as errors")
	return cmd
}
