package gateway

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"hash/maphash"
)

// Drivers and offers are known to the gateway by a 64-bit hash of their identity header value
// and of their offer id (identity.go, jsonscan.go). Two hashes, one per kind of state:
//
//   - local state (one replica's table) hashes with maphash and a seed made per process: the
//     fastest hash Go has, and one nobody outside the process can aim at;
//   - shared state (docs/design.md#shared-state-on-redis) needs a name that every pod of the
//     policy computes alike, whatever its process: the first 8 bytes of SHA-256 over a 32-byte
//     key and the value, with the key derived from the policy's identity (namespace, name,
//     identity header: sharedHashKey). The key is not a secret, and need not be: what keeps
//     a bot from aiming at another driver's key is SHA-256's second-preimage resistance
//     (2⁶⁴ work for 64 bits), not the key's secrecy; and the key keeps two policies' names of
//     one driver apart. The cost, about 0.3 µs a value, is small against a Redis round trip.
type idHasher struct {
	seed maphash.Seed
	key  *[32]byte // nil: maphash with seed; else the shared hash with this key
}

// localHasher is the per-process hasher of local state.
func localHasher(seed maphash.Seed) idHasher { return idHasher{seed: seed} }

// sharedHasher is the hasher every replica of the policy whose state key is stateKey agrees on.
func sharedHasher(stateKey string) idHasher {
	k := sharedHashKey(stateKey)
	return idHasher{key: &k}
}

// sharedHashKey derives the shared hash's key from a policy's state key.
func sharedHashKey(stateKey string) [32]byte {
	return sha256.Sum256([]byte("offerfeed.dev/shared-state/v1\x00" + stateKey))
}

// sum hashes b.
func (h idHasher) sum(b []byte) uint64 {
	if h.key == nil {
		return maphash.Bytes(h.seed, b)
	}
	if len(b) <= 96 { // on the stack: one or two SHA-256 blocks, no allocation
		var buf [128]byte
		n := copy(buf[:], h.key[:])
		n += copy(buf[n:], b)
		s := sha256.Sum256(buf[:n])
		return binary.BigEndian.Uint64(s[:8])
	}
	return h.sumString(string(b)) // a copy: b stays on its caller's stack
}

// sumString hashes s.
func (h idHasher) sumString(s string) uint64 {
	if h.key == nil {
		return maphash.String(h.seed, s)
	}
	if len(s) <= 96 {
		var buf [128]byte
		n := copy(buf[:], h.key[:])
		n += copy(buf[n:], s)
		sum := sha256.Sum256(buf[:n])
		return binary.BigEndian.Uint64(sum[:8])
	}
	var st idStream
	st.init(h)
	st.writeString(s)
	return st.sum64()
}

// idStream hashes a value written in pieces, as idHasher.sum hashes it whole.
type idStream struct {
	key *[32]byte
	mh  maphash.Hash
	sh  hash.Hash // the shared hash's state, made on first use and reused
}

func (s *idStream) init(h idHasher) {
	s.key = h.key
	if h.key == nil {
		s.mh.SetSeed(h.seed)
		return
	}
	s.reset()
}

func (s *idStream) reset() {
	if s.key == nil {
		s.mh.Reset()
		return
	}
	if s.sh == nil {
		s.sh = sha256.New()
	}
	s.sh.Reset()
	s.sh.Write(s.key[:])
}

func (s *idStream) write(b []byte) {
	if s.key == nil {
		s.mh.Write(b)
		return
	}
	s.sh.Write(bytes.Clone(b)) // a copy: b stays on its caller's stack for local hashes
}

func (s *idStream) writeString(v string) {
	if s.key == nil {
		s.mh.WriteString(v)
		return
	}
	s.sh.Write([]byte(v))
}

func (s *idStream) sum64() uint64 {
	if s.key == nil {
		return s.mh.Sum64()
	}
	var buf [sha256.Size]byte
	return binary.BigEndian.Uint64(s.sh.Sum(buf[:0])[:8])
}
