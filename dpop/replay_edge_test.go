package dpop

import (
	"testing"
	"time"
)

// TestReplayAtWindowEdge: at the last instant of a proof's window (now = iat + max_age +
// leeway, which the iat check still accepts) a replay is refused: the replay cache keeps the
// proof for as long as its iat is accepted, that instant included.
func TestReplayAtWindowEdge(t *testing.T) {
	ec := ecSigner(t)
	now := t0
	c := NewChecker(Options{MaxAge: 60 * time.Second, Now: func() time.Time { return now }, Replay: NewReplayCache(10)})
	proof := ec.sign(t, ec.header(), goodClaims("edge"))
	if err := c.Check(request(proof, ec.thumbprint())); err != nil {
		t.Fatalf("first use refused: %v", err)
	}
	now = t0.Add(60*time.Second + 30*time.Second) // max_age + the request's leeway
	want := "invalid_dpop_proof: jti was seen before: the proof is replayed"
	if err := c.Check(request(proof, ec.thumbprint())); err == nil || err.Error() != want {
		t.Fatalf("replay at the window's last instant: %v, want %q", err, want)
	}
	now = now.Add(time.Nanosecond)
	if err := c.Check(request(proof, ec.thumbprint())); err == nil || err.Error() == want {
		t.Fatalf("after the window: %v, want a refusal for its age", err)
	}
}
