package server

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-authz/portcullis/authz"
	"github.com/portcullis-authz/portcullis/config"
	"github.com/portcullis-authz/portcullis/jwks"
)

// OneShot builds an engine for a single evaluation (`portcullis check`): the issuers' keys are
// fetched for real, waiting until every issuer is ready or ctx ends. The returned stop ends the
// caches. An issuer still without keys then answers 503, as `serve` would.
func OneShot(ctx context.Context, cfg *config.Loaded, log *slog.Logger) (*authz.Engine, func(), error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	keys := newKeySets(runCtx, jwks.NewMetrics(prometheus.NewRegistry()), log, nil)
	caches, commit, err := keys.build(cfg)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	engine, err := newEngine(cfg, caches, nil)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	commit()
	stop := func() { keys.stop(); cancel() }
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if keys.ready() {
			return engine, stop, nil
		}
		select {
		case <-ctx.Done():
			return engine, stop, nil
		case <-tick.C:
		}
	}
}
