package jwks

import "time"

// Clock is the cache's source of time. Production uses RealClock; tests inject a fake whose
// time moves only when the test advances it, so no test sleeps for time to pass.
//
// The cache waits with After only in its background loop, one wait at a time, and stops
// listening when its context ends; an implementation need not support cancelling a wait.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// After returns a channel that receives once d has elapsed.
	After(d time.Duration) <-chan time.Time
}

// RealClock returns the wall clock (time.Now, time.After).
func RealClock() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
