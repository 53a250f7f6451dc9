package dpop

import (
	"strconv"
	"testing"
	"time"
)

// proofPool signs proofs in batches outside the timer: each proof is used once, as the replay
// cache demands.
type proofPool struct {
	b      *testing.B
	s      *signer
	proofs []string
	n      int
}

func (p *proofPool) next() string {
	if len(p.proofs) == 0 {
		p.b.StopTimer()
		for range 512 {
			p.n++
			p.proofs = append(p.proofs, p.s.sign(p.b, p.s.header(), goodClaims("bench-"+strconv.Itoa(p.n))))
		}
		p.b.StartTimer()
	}
	x := p.proofs[len(p.proofs)-1]
	p.proofs = p.proofs[:len(p.proofs)-1]
	return x
}

// BenchmarkCheck: one proof check (ES256, the usual DPoP algorithm): parse, signature,
// claims, thumbprint and the replay cache. BenchmarkCheckEdDSA is the same with Ed25519.
func BenchmarkCheck(b *testing.B)      { benchCheck(b, ecSigner(b)) }
func BenchmarkCheckEdDSA(b *testing.B) { benchCheck(b, edSigner(b, 5)) }

func benchCheck(b *testing.B, s *signer) {
	c := NewChecker(Options{Now: func() time.Time { return t0 }, Replay: NewReplayCache(1 << 22)})
	pool := &proofPool{b: b, s: s}
	r := request("", s.thumbprint())
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.Proof = pool.next()
		if err := c.Check(r); err != nil {
			b.Fatal(err)
		}
	}
}
