package rsakey

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"math/big"
	"sync"
	"testing"
)

var (
	keysOnce sync.Once
	keys     map[int]*rsa.PrivateKey
)

// testKeys are generated once per run: 2048, 3072 and 4096 bits.
func testKeys(t testing.TB) map[int]*rsa.PrivateKey {
	keysOnce.Do(func() {
		keys = map[int]*rsa.PrivateKey{}
		for _, bits := range []int{2048, 3072, 4096} {
			k, err := rsa.GenerateKey(rand.Reader, bits)
			if err != nil {
				panic(err)
			}
			keys[bits] = k
		}
	})
	return keys
}

func hashOf(h crypto.Hash, msg []byte) []byte {
	switch h {
	case crypto.SHA256:
		d := sha256.Sum256(msg)
		return d[:]
	case crypto.SHA384:
		d := sha512.Sum384(msg)
		return d[:]
	}
	d := sha512.Sum512(msg)
	return d[:]
}

// rawSign returns em^d mod n as k octets: a "signature" of an arbitrary encoded block, so that
// the tests can hand both verifiers blocks no honest signer makes.
func rawSign(k *rsa.PrivateKey, em []byte) ([]byte, bool) {
	m := new(big.Int).SetBytes(em)
	if m.Cmp(k.N) >= 0 {
		return nil, false
	}
	return new(big.Int).Exp(m, k.D, k.N).FillBytes(make([]byte, k.Size())), true
}

// encode is EMSA-PKCS1-v1_5 written out plainly, for the tests to vary.
func encode(k int, prefix, hashed []byte) []byte {
	em := make([]byte, k)
	em[1] = 1
	ps := k - len(prefix) - len(hashed) - 1
	for i := 2; i < ps; i++ {
		em[i] = 0xff
	}
	copy(em[ps+1:], prefix)
	copy(em[k-len(hashed):], hashed)
	return em
}

// agree checks that Public and crypto/rsa give the same verdict and returns it.
func agree(t *testing.T, pub *rsa.PublicKey, h crypto.Hash, hashed, sig []byte) bool {
	t.Helper()
	p, err := New(pub)
	if err != nil {
		t.Fatal(err)
	}
	want := rsa.VerifyPKCS1v15(pub, h, hashed, sig) == nil
	got := p.VerifyPKCS1v15(h, hashed, sig) == nil
	if got != want {
		t.Fatalf("%v, %d-bit key, signature %x…: rsakey says valid=%v, crypto/rsa says valid=%v", h, pub.N.BitLen(), sig[:min(8, len(sig))], got, want)
	}
	return got
}

func TestVerifyAgreesWithCryptoRSA(t *testing.T) {
	msg := []byte("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9")
	for bits, k := range testKeys(t) {
		for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512} {
			hashed := hashOf(h, msg)
			sig, err := rsa.SignPKCS1v15(rand.Reader, k, h, hashed)
			if err != nil {
				t.Fatal(err)
			}
			if !agree(t, &k.PublicKey, h, hashed, sig) {
				t.Fatalf("%d bits, %v: a valid signature was refused", bits, h)
			}
			// A single-bit change of the signature (every octet with the 2048-bit key and
			// SHA-256, a spread of octets otherwise) or of the digest is refused.
			step := 1
			if bits != 2048 || h != crypto.SHA256 {
				step = 29
			}
			for i := 0; i < len(sig); i += step {
				for _, bit := range []byte{0x01, 0x80} {
					bad := bytes.Clone(sig)
					bad[i] ^= bit
					if agree(t, &k.PublicKey, h, hashed, bad) {
						t.Fatalf("%d bits, %v: signature with byte %d flipped verified", bits, h, i)
					}
				}
			}
			for i := range hashed {
				bad := bytes.Clone(hashed)
				bad[i] ^= 1
				if agree(t, &k.PublicKey, h, bad, sig) {
					t.Fatalf("%d bits, %v: another digest verified", bits, h)
				}
			}
			// The digest of another hash of the same size class is refused.
			for _, other := range []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512} {
				if other != h && agree(t, &k.PublicKey, other, hashOf(other, msg), sig) {
					t.Fatalf("%d bits: a %v signature verified as %v", bits, h, other)
				}
			}
		}
	}
}

func TestVerifyRefusesMalformedSignatures(t *testing.T) {
	k := testKeys(t)[2048]
	hashed := hashOf(crypto.SHA256, []byte("m"))
	sig, err := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, hashed)
	if err != nil {
		t.Fatal(err)
	}
	n := k.N.FillBytes(make([]byte, k.Size()))
	nPlus := new(big.Int).Add(k.N, sig2int(sig)).Bytes() // s + n: the same residue, too large
	cases := map[string][]byte{
		"empty":                  {},
		"one octet short":        sig[1:],
		"leading zero added":     append([]byte{0}, sig...),
		"one octet long":         append(bytes.Clone(sig), 0),
		"the modulus itself":     n,
		"all 0xff":               bytes.Repeat([]byte{0xff}, k.Size()),
		"zero":                   make([]byte, k.Size()),
		"one":                    append(make([]byte, k.Size()-1), 1),
		"signature plus modulus": nPlus,
	}
	for name, s := range cases {
		if agree(t, &k.PublicKey, crypto.SHA256, hashed, s) {
			t.Errorf("%s: verified", name)
		}
	}
}

func sig2int(b []byte) *big.Int { return new(big.Int).SetBytes(b) }

// TestVerifyRefusesNearEncodings signs blocks that differ from the one valid encoding in one
// part each, as forgeries that exploit a parsing verifier do (garbage after the digest, a
// short padding, a parameter-less or other-hash DigestInfo, block type 2): only the exact
// encoding verifies.
func TestVerifyRefusesNearEncodings(t *testing.T) {
	k := testKeys(t)[2048]
	size := k.Size()
	hashed := hashOf(crypto.SHA256, []byte("m"))
	prefix := digestInfo[crypto.SHA256]
	good := encode(size, prefix, hashed)
	if sig, _ := rawSign(k, good); !agree(t, &k.PublicKey, crypto.SHA256, hashed, sig) {
		t.Fatal("the exact encoding, signed raw, was refused")
	}
	variants := map[string]func([]byte) []byte{
		"block type 2":         func(em []byte) []byte { em[1] = 2; return em },
		"non-zero first octet": func(em []byte) []byte { em[0] = 1; return em },
		"0xfe in the padding":  func(em []byte) []byte { em[5] = 0xfe; return em },
		"no zero separator":    func(em []byte) []byte { em[size-len(prefix)-len(hashed)-1] = 0xff; return em },
		"short padding, garbage after the digest": func(em []byte) []byte {
			// 0x00 0x01 ff×8 0x00 DigestInfo digest garbage…
			out := make([]byte, size)
			out[1] = 1
			for i := 2; i < 10; i++ {
				out[i] = 0xff
			}
			copy(out[11:], prefix)
			copy(out[11+len(prefix):], hashed)
			for i := 11 + len(prefix) + len(hashed); i < size; i++ {
				out[i] = 0x42
			}
			return out
		},
		"DigestInfo without the NULL parameters": func([]byte) []byte {
			p := []byte{0x30, 0x2f, 0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x04, 0x20}
			return encode(size, p, hashed)
		},
		"SHA-384's DigestInfo over a SHA-256 digest": func([]byte) []byte { return encode(size, digestInfo[crypto.SHA384], hashed) },
		"digest changed in its last octet":           func(em []byte) []byte { em[size-1] ^= 1; return em },
		"prefix changed":                             func(em []byte) []byte { em[size-len(hashed)-3] ^= 1; return em },
	}
	for name, vary := range variants {
		em := vary(bytes.Clone(good))
		sig, ok := rawSign(k, em)
		if !ok {
			t.Fatalf("%s: the block is not below the modulus", name)
		}
		if agree(t, &k.PublicKey, crypto.SHA256, hashed, sig) {
			t.Errorf("%s: verified", name)
		}
	}
}

func TestVerifyArguments(t *testing.T) {
	k := testKeys(t)[2048]
	p, err := New(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, k.Size())
	if err := p.VerifyPKCS1v15(crypto.SHA1, make([]byte, 20), sig); err == nil || err == ErrVerification {
		t.Errorf("SHA-1: %v, want an error naming the hash", err)
	}
	if err := p.VerifyPKCS1v15(crypto.SHA256, make([]byte, 31), sig); err == nil || err == ErrVerification {
		t.Errorf("a 31-octet SHA-256 digest: %v, want an error naming the input", err)
	}
}

func TestNewRefusesWhatCryptoRSARefuses(t *testing.T) {
	k := testKeys(t)[2048]
	small := new(big.Int).Rsh(k.N, 1025) // 1023 bits, odd or not: refused for its size
	small.SetBit(small, 0, 1)
	even := new(big.Int).Add(k.N, big.NewInt(1))
	huge := new(big.Int).Lsh(big.NewInt(1), MaxBits+1)
	huge.Add(huge, big.NewInt(1))
	for name, pub := range map[string]*rsa.PublicKey{
		"nil modulus":   {E: 65537},
		"1023 bits":     {N: small, E: 65537},
		"16385+ bits":   {N: huge, E: 65537},
		"even modulus":  {N: even, E: 65537},
		"exponent 1":    {N: k.N, E: 1},
		"even exponent": {N: k.N, E: 65536},
		"exponent 2³¹":  {N: k.N, E: 1 << 31},
	} {
		if _, err := New(pub); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := New(nil); err == nil {
		t.Error("nil key: accepted")
	}
	// Exponent 3 is valid, and verifies as crypto/rsa does.
	k3 := &rsa.PublicKey{N: k.N, E: 3}
	hashed := hashOf(crypto.SHA256, []byte("m"))
	sig, _ := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, hashed)
	agree(t, k3, crypto.SHA256, hashed, sig)
}

func TestConcurrentUse(t *testing.T) {
	k := testKeys(t)[2048]
	p, err := New(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				hashed := hashOf(crypto.SHA256, []byte{byte(g), byte(i)})
				sig, _ := rsa.SignPKCS1v15(nil, k, crypto.SHA256, hashed)
				if err := p.VerifyPKCS1v15(crypto.SHA256, hashed, sig); err != nil {
					t.Error(err)
					return
				}
				sig[len(sig)/2] ^= 1
				if p.VerifyPKCS1v15(crypto.SHA256, hashed, sig) == nil {
					t.Error("a changed signature verified")
					return
				}
			}
		}(g)
	}
	wg.Wait()
}

// FuzzVerify signs arbitrary blocks raw with a 2048-bit key and holds Public to crypto/rsa's
// verdict on each, for the three hashes; the seeds are the valid encodings and near misses.
func FuzzVerify(f *testing.F) {
	k := testKeys(f)[2048]
	p, err := New(&k.PublicKey)
	if err != nil {
		f.Fatal(err)
	}
	hashes := []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512}
	for i, h := range hashes {
		hashed := hashOf(h, []byte("seed"))
		em := encode(k.Size(), digestInfo[h], hashed)
		f.Add(uint8(i), hashed, em)
		em2 := bytes.Clone(em)
		em2[3] = 0
		f.Add(uint8(i), hashed, em2)
	}
	f.Fuzz(func(t *testing.T, which uint8, hashed, em []byte) {
		h := hashes[int(which)%len(hashes)]
		if len(hashed) != h.Size() {
			return
		}
		if len(em) < k.Size() {
			em = append(make([]byte, k.Size()-len(em)), em...)
		}
		sig, ok := rawSign(k, em[:k.Size()])
		if !ok {
			return
		}
		want := rsa.VerifyPKCS1v15(&k.PublicKey, h, hashed, sig) == nil
		if got := p.VerifyPKCS1v15(h, hashed, sig) == nil; got != want {
			t.Fatalf("%v: rsakey valid=%v, crypto/rsa valid=%v for block %x", h, got, want, em)
		}
	})
}

func BenchmarkVerifyPKCS1v15(b *testing.B) {
	k := testKeys(b)[2048]
	hashed := hashOf(crypto.SHA256, []byte("m"))
	sig, _ := rsa.SignPKCS1v15(nil, k, crypto.SHA256, hashed)
	p, err := New(&k.PublicKey)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("impl=rsakey", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := p.VerifyPKCS1v15(crypto.SHA256, hashed, sig); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=crypto-rsa", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := rsa.VerifyPKCS1v15(&k.PublicKey, crypto.SHA256, hashed, sig); err != nil {
				b.Fatal(err)
			}
		}
	})
}
