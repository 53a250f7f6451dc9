package dpop

import (
	"container/heap"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"
)

// DefaultReplayEntries bounds the replay cache: at the default window (max_age 60 s plus a
// leeway of 30 s) it holds every proof of about 1100 requests a second.
const DefaultReplayEntries = 100_000

var errReplayed = errors.New("replayed")

// ReplayCache remembers the proofs a process has accepted until their iat window closes, so
// that a proof is accepted once (RFC 9449 §11.1). It is per process: a proof replayed to
// another replica within its window is not detected there. It holds at most its bound of
// entries; when every entry is still inside its window, a new proof is refused (fail closed)
// rather than an entry forgotten early. Safe for concurrent use.
type ReplayCache struct {
	mu      sync.Mutex
	max     int
	seen    map[[sha256.Size]byte]time.Time
	byUntil untilHeap
}

// NewReplayCache returns a cache of at most max entries (at least 1).
func NewReplayCache(max int) *ReplayCache {
	if max < 1 {
		max = 1
	}
	return &ReplayCache{max: max, seen: make(map[[sha256.Size]byte]time.Time)}
}

// Len is the number of proofs remembered (expired ones included until they are swept).
func (c *ReplayCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

// replayKey names a proof by its key and jti: two clients that happen to pick the same jti do
// not collide, and no client-chosen string is kept.
func replayKey(p *Proof) [sha256.Size]byte {
	return sha256.Sum256([]byte(p.Thumbprint + "\x00" + p.JTI))
}

// remember records key until until, that instant included (the last at which the proof's iat is
// still accepted). It fails with errReplayed when key is recorded and its window is still open,
// and when the cache is full of open windows.
func (c *ReplayCache) remember(key [sha256.Size]byte, until, now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.byUntil) > 0 && c.byUntil[0].until.Before(now) {
		e := heap.Pop(&c.byUntil).(untilEntry)
		if u, ok := c.seen[e.key]; ok && u.Before(now) {
			delete(c.seen, e.key)
		}
	}
	if u, ok := c.seen[key]; ok && !u.Before(now) {
		return errReplayed
	}
	if len(c.seen) >= c.max {
		return fmt.Errorf("the replay cache is full (%d proofs inside their window); the proof cannot be checked for replay", c.max)
	}
	c.seen[key] = until
	heap.Push(&c.byUntil, untilEntry{key: key, until: until})
	return nil
}

type untilEntry struct {
	key   [sha256.Size]byte
	until time.Time
}

// untilHeap orders entries by the end of their window, earliest first.
type untilHeap []untilEntry

func (h untilHeap) Len() int           { return len(h) }
func (h untilHeap) Less(i, j int) bool { return h[i].until.Before(h[j].until) }
func (h untilHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *untilHeap) Push(x any)        { *h = append(*h, x.(untilEntry)) }
func (h *untilHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
