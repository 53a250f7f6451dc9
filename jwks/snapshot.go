package jwks

import (
	"context"
	"log/slog"
	"sort"
	"strings"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

// snapshot is an immutable key set, built once per change and read without locks.
type snapshot struct {
	keys        []Key
	byKID       map[string]map[jwa.SignatureAlgorithm][]Key
	byAlg       map[jwa.SignatureAlgorithm][]Key // every key fitting the algorithm, for kid-less tokens
	thumbprints map[string]struct{}
	fingerprint string // identifies the set: kids, thumbprints, algorithms
}

func newSnapshot(parsed []parsedKey) *snapshot {
	s := &snapshot{
		keys:        make([]Key, len(parsed)),
		byKID:       map[string]map[jwa.SignatureAlgorithm][]Key{},
		byAlg:       map[jwa.SignatureAlgorithm][]Key{},
		thumbprints: map[string]struct{}{},
	}
	ids := make([]string, len(parsed))
	for i, p := range parsed {
		s.keys[i] = p.Key
		s.thumbprints[p.Thumbprint] = struct{}{}
		ids[i] = p.KID + "\x00" + p.Thumbprint + "\x00" + algList(p.algs)
		for _, a := range p.algs {
			s.byAlg[a] = append(s.byAlg[a], p.Key)
			if p.KID == "" {
				continue
			}
			if s.byKID[p.KID] == nil {
				s.byKID[p.KID] = map[jwa.SignatureAlgorithm][]Key{}
			}
			// One key per (kid, alg): parseSet dropped later duplicates. The full slice
			// expression keeps a caller's append from writing into the snapshot.
			one := []Key{p.Key}
			s.byKID[p.KID][a] = one[:1:1]
		}
	}
	for a, keys := range s.byAlg {
		s.byAlg[a] = keys[:len(keys):len(keys)]
	}
	sort.Strings(ids)
	s.fingerprint = strings.Join(ids, "\x01")
	return s
}

func (s *snapshot) kids() []string {
	var kids []string
	for _, k := range s.keys {
		kids = append(kids, k.KID)
	}
	return kids
}

func diffKIDs(prev, next *snapshot) (added, removed []string) {
	for _, k := range next.keys {
		if _, ok := prev.thumbprints[k.Thumbprint]; !ok {
			added = append(added, k.KID)
		}
	}
	for _, k := range prev.keys {
		if _, ok := next.thumbprints[k.Thumbprint]; !ok {
			removed = append(removed, k.KID)
		}
	}
	return added, removed
}

// logSkipped reports the keys that are not used; notable ones as warnings when loud is set
// (first load or a changed set), so a steady set does not repeat them at every refresh.
func (c *Cache) logSkipped(skipped []skippedKey, loud bool) {
	for _, s := range skipped {
		level := slog.LevelDebug
		if s.notable && loud {
			level = slog.LevelWarn
		}
		c.log.Log(context.Background(), level, "jwks: key skipped", "key", s.String())
	}
}
