package introspect

import (
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// cache holds answers by token key, each until its Until; the least recently used goes when
// it is full.
type cache struct {
	lru *lru.Cache[Key, Answer]
}

func newCache(size int) *cache {
	l, err := lru.New[Key, Answer](size)
	if err != nil {
		return nil // only for size <= 0, which New excludes
	}
	return &cache{lru: l}
}

// get returns the answer cached for key while now is before its Until, marked Cached; an
// entry past its time is dropped.
func (c *cache) get(key Key, now time.Time) (Answer, bool) {
	ans, ok := c.lru.Get(key)
	if !ok {
		return Answer{}, false
	}
	if !now.Before(ans.Until) {
		c.lru.Remove(key)
		return Answer{}, false
	}
	ans.Cached = true
	return ans, true
}

func (c *cache) add(key Key, ans Answer) { c.lru.Add(key, ans) }
