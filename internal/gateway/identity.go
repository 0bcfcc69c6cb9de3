package gateway

import (
	"encoding/binary"
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
func identityKey(h idHasher, vs []string) (uint64, bool) {
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
			elem = trimOWS(elem)
			if elem == "" {
				continue
			}
			var k uint64
			var ok bool
			if strings.IndexByte(elem, ' ') >= 0 || strings.IndexByte(elem, '\t') >= 0 {
				k, ok = identityElemKeySlow(h, elem)
			} else {
				k, ok = identityElemKey(h, elem)
			}
			if !ok || found && k != key {
				return 0, false
			}
			key, found = k, true
		}
	}
	return key, found
}

// trimOWS trims spaces and tabs (HTTP's optional white space) from both ends of s.
func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// identityElemKey hashes one trimmed, non-empty element of an identity header without white
// space (tokens, driver ids): ASCII letters in lower case. It refuses bytes outside visible
// ASCII. The element is copied to a buffer on the stack and folded there 8 bytes at a time.
func identityElemKey(h idHasher, s string) (uint64, bool) {
	if len(s) <= 64 {
		var buf [64]byte
		b := buf[:copy(buf[:], s)]
		if !foldASCII(b) {
			return 0, false
		}
		return h.sum(b), true
	}
	return identityElemKeyLong(h, s)
}

func identityElemKeyLong(hs idHasher, s string) (uint64, bool) {
	var buf [512]byte
	var h idStream
	h.init(hs)
	for len(s) > 0 {
		b := buf[:copy(buf[:], s)]
		s = s[len(b):]
		if !foldASCII(b) {
			return 0, false
		}
		h.write(b)
	}
	return h.sum64(), true
}

// foldASCII lower-cases the ASCII letters of b in place, or reports false when b holds a byte
// outside visible ASCII.
func foldASCII(b []byte) bool {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		w, ok := foldWord(binary.LittleEndian.Uint64(b[i:]))
		if !ok {
			return false
		}
		binary.LittleEndian.PutUint64(b[i:], w)
	}
	for ; i < len(b); i++ {
		c := b[i]
		if c < 0x21 || c > 0x7e {
			return false
		}
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return true
}

// Bytes of every lane of a word, for foldWord.
const (
	lanes = 0x0101010101010101
	highs = 0x8080808080808080
)

// foldWord lower-cases the ASCII letters among 8 bytes, or reports false when one of them is
// not visible ASCII (0x21 to 0x7E). No lane carries into the next: every byte is below 0x80
// when the sums are taken.
func foldWord(w uint64) (uint64, bool) {
	if w&highs != 0 || // a byte of 0x80 or more
		(w+(0x80-0x21)*lanes)&highs != highs || // a byte below 0x21
		(w+lanes)&highs != 0 { // 0x7F
		return 0, false
	}
	ge := (w + (0x80-'A')*lanes) & highs // lanes at or above 'A'
	gt := (w + (0x80-'Z'-1)*lanes) & highs
	return w | (ge&^gt)>>2, true // 0x80>>2 is the case bit 0x20
}

// identityElemKeySlow is identityElemKey for an element with white space or a byte outside
// visible ASCII.
func identityElemKeySlow(hs idHasher, s string) (uint64, bool) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x21 || c > 0x7e) && c != ' ' && c != '\t' {
			return 0, false
		}
	}
	var h idStream
	h.init(hs)
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
			h.write(buf[:n])
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
	h.write(buf[:n])
	return h.sum64(), true
}
