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

// OneShotStatus builds an engine for a single evaluation (`portcullis check`): the issuers'
// keys are fetched for real, waiting until every issuer is ready, its first fetch has failed,
// or ctx ends. The returned stop ends the caches. An issuer still without keys then answers
// 503, as `serve` would. It also returns the state of every issuer still without keys when the
// wait ended, by issuer (its LastError is the fetch error, "" when ctx ended before any fetch
// did), so that `portcullis check` can say why a decision could not be made.
//
// The wait for an issuer ends at its first failed fetch: a refused connection or an error
// answer does not mend in the seconds a check waits, and the background retries back off
// from the fetch floor. The failure must be seen on two polls in a row, which leaves the
// cache its fallback on a persisted key set (jwks_cache_dir), read right after the failure.
func OneShotStatus(ctx context.Context, cfg *config.Loaded, log *slog.Logger) (*authz.Engine, []jwks.Status, func(), error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	keys := newKeySets(runCtx, jwks.NewMetrics(prometheus.NewRegistry()), log, nil)
	caches, commit, err := keys.build(cfg)
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	engine, err := newEngine(cfg, caches, nil, log, &introspection{log: log}, nil)
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	commit()
	stop := func() { keys.stop(); cancel() }
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	failedBefore := map[string]bool{} // issuers seen failed at the previous poll
	for {
		missing := keys.notReady()
		settled := true
		failedNow := map[string]bool{}
		for _, st := range missing {
			if st.ConsecutiveFailures > 0 {
				failedNow[st.Issuer] = true
			}
			if !failedNow[st.Issuer] || !failedBefore[st.Issuer] {
				settled = false
			}
		}
		if settled {
			return engine, missing, stop, nil
		}
		failedBefore = failedNow
		select {
		case <-ctx.Done():
			return engine, keys.notReady(), stop, nil
		case <-tick.C:
		}
	}
}
