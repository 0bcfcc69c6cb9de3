package gateway

import (
	"hash/maphash"
	"strings"
)

// The identity header's value is compared as the offer service behind the gateway could read
// it, so that no spelling of one identity is a fresh driver to the gateway (docs/gateway.md,
// "Identity"):
//
//   - the header's lines and their comma-separated elements are one list (RFC 9110 §5.3: a
//     recipient may join field lines with commas, and a service may take any element); empty
//     elements are ignored, and every other element must name the same identity, else there
//     is none;
//   - an element is trimmed of spaces and tabs, runs of them inside it are one space (a
//     service may split "Bearer  tok" on white space), and ASCII letters are compared in any
//     case (auth schemes are case-insensitive; tokens looked up with a case-insensitive
//     collation, MySQL's default, match in any case);
//   - an element with a byte outside visible ASCII (a control byte, DEL, or any byte of a
//     non-ASCII character) is no identity: look-alikes such as "té" for "te" or fullwidth
//     letters are the same key to a service whose collation or normalization folds them.
//
// Overrides name their drivers by the same key.

// identityKey returns the key of the identity that the values of an identity header name, and
// whether they name exactly one.
func identityKey(seed maphash.Seed, vs []string) (uint64, bool) {
	var key uint64
	found := false
	for _, v := range vs {
		for len(v) > 0 {
			elem := v
			if i := strings.IndexByte(v, ','); i >= 0 {
				elem, v = v[:i], v[i+1:]
			} else {
				v = ""
			}
			elem = strings.Trim(elem, " \t")
			if elem == "" {
				continue
			}
			k, ok := identityElemKey(seed, elem)
			if !ok || found && k != key {
				return 0, false
			}
			key, found = k, true
		}
	}
	return key, found
}

// identityElemKey hashes one trimmed, non-empty element of an identity header: ASCII letters in
// lower case, runs of spaces and tabs as one space. It refuses bytes outside visible ASCII.
// An element already in that form (the common case) is hashed as it is.
func identityElemKey(seed maphash.Seed, s string) (uint64, bool) {
	plain := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' && s[i-1] != ' ': // s is trimmed: i > 0
		case c < 0x21 || c > 0x7e:
			if c != ' ' && c != '\t' {
				return 0, false
			}
			plain = false
		case 'A' <= c && c <= 'Z':
			plain = false
		}
	}
	if plain {
		return maphash.String(seed, s), true
	}
	var h maphash.Hash
	h.SetSeed(seed)
	var buf [128]byte
	n := 0
	space := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ' ' || c == '\t' {
			space = true
			continue
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if n+2 > len(buf) {
			h.Write(buf[:n])
			n = 0
		}
		if space {
			buf[n] = ' '
			n++
			space = false
		}
		buf[n] = c
		n++
	}
	h.Write(buf[:n])
	return h.Sum64(), true
}
