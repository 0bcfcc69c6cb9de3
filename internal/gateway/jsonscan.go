package gateway

import (
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// A jsonPath is a compiled shownOffers.jsonPath (or the one-step path of offerIdField): the
// steps from the root of a JSON document to the values it names.
type jsonPath []pathStep

// pathStep is one step of a jsonPath: into the field name of an object, or (elem) into every
// element of an array.
type pathStep struct {
	name string
	elem bool
	// fold marks the path of an accept's offerIdField, read the way a Go offer service reads
	// it with json.Unmarshal into a struct field: the field name matches every key that folds
	// to it (foldKey), and a number is an offer id only as a canonical integer (see
	// jsonScanner.Ambiguous).
	fold bool
}

// compileJSONPath compiles a path such as offers[].id, offerList[].offerId or [].id. The syntax
// is checked by gatewayconfig.Validate; compileJSONPath only refuses what it cannot walk.
func compileJSONPath(s string) (jsonPath, error) {
	if s == "" {
		return nil, errors.New("empty jsonPath")
	}
	var p jsonPath
	for i, part := range strings.Split(s, ".") {
		if part == "[]" && i == 0 {
			p = append(p, pathStep{elem: true})
			continue
		}
		name, arr := strings.CutSuffix(part, "[]")
		if name == "" || strings.ContainsAny(name, "[]") {
			return nil, errors.New("jsonPath " + s + ": bad step " + part)
		}
		p = append(p, pathStep{name: name})
		if arr {
			p = append(p, pathStep{elem: true})
		}
	}
	if len(p) > maxScanDepth {
		return nil, errors.New("jsonPath " + s + ": too deep")
	}
	return p, nil
}

// Limits of the JSON scanner.
const (
	// maxScanDepth is the deepest nesting the scanner follows; a deeper document stops the scan.
	maxScanDepth = 64
	// maxIDLen is the longest offer id the gateway hashes; longer values are ignored.
	maxIDLen = 1024
	// maxKeyLen is the longest object key (unescaped) the scanner compares with a path step;
	// a longer key matches none. A key folds to an ASCII name of n bytes only when it has n
	// runes, each ASCII or one of the two runes outside ASCII that fold into it (U+017F ſ, two
	// bytes, and U+212A K, three; TestFoldIntoASCII), so no key longer than 3 × the longest
	// offerIdField can match one, and jsonPath names (compared exactly) are shorter still.
	maxKeyLen = 3 * gatewayconfig.MaxFieldLen
)

// scanner states.
const (
	stValue    = iota // expecting a value
	stArrFirst        // after '[': a value or ']'
	stObjFirst        // after '{': a key or '}'
	stObjKey          // after ',' in an object: a key
	stColon           // after a key: ':'
	stAfter           // after a value: ',' or a closing bracket, or the end
	stString          // inside a string
	stEsc             // after '\' in a string
	stHex             // inside \uXXXX
	stNumber          // inside a number (num says where)
	stLiteral         // inside true, false or null
	stDone            // the root value ended; only white space may follow
	stErr             // not JSON; nothing more is scanned
)

// jsonScanner is a push scanner over a JSON document: Write it the bytes as they stream by and
// it reports, through found, the hash of every scalar value (string contents after unescaping,
// or a number's literal text) at its path. It keeps no more than fixed-size state, never buffers
// the document, and never allocates after it is made.
type jsonScanner struct {
	path  jsonPath
	ids   idHasher
	found func(h uint64)

	state  uint8
	depth  int
	isObj  [maxScanDepth + 1]bool
	prefix [maxScanDepth + 1]bool // prefix[d]: the container at depth d lies on path
	child  [maxScanDepth + 1]bool // child[d]: the current child of the container at depth d lies on path

	// string state
	inKey    bool
	capture  bool // hashing this string or number as a found value
	keyBuf   [maxKeyLen]byte
	keyLen   int
	keyOver  bool
	hex      rune
	hexN     int
	highSurr rune
	h        idStream
	val      [maxIDLen]byte
	valLen   int

	tmp [utf8.UTFMax]byte

	// number state: where in the grammar of RFC 8259 a number is, and whether it is negative
	num    uint8
	numNeg bool

	// strict is set for a path with fold steps (an accept's offerIdField): there a value at
	// the path that encoding/json could read otherwise than the gateway makes the document
	// ambiguous.
	strict    bool
	ambiguous bool

	// literal state
	lit  string
	litN int
}

func newJSONScanner(path jsonPath, ids idHasher, found func(uint64)) *jsonScanner {
	s := &jsonScanner{}
	s.init(path, ids, found)
	return s
}

func (s *jsonScanner) init(path jsonPath, ids idHasher, found func(uint64)) {
	s.path, s.ids, s.found = path, ids, found
	s.h.init(ids)
	s.state = stValue
	s.depth = 0
	s.prefix[0] = true
	// A scanner from a pool may have stopped in the middle of a document.
	s.inKey, s.capture, s.keyLen, s.keyOver, s.highSurr, s.valLen = false, false, 0, false, 0, 0
	s.strict, s.ambiguous = false, false
	for _, st := range path {
		s.strict = s.strict || st.fold
	}
}

// Ambiguous reports, for a path with fold steps, that a value at the path is one that a Go
// offer service could read as another id than the gateway: a number other than a canonical
// integer (1.0, 1e2 and -0 are each the integer of another literal for a service that
// decodes ids into float64 or int fields), or a value longer than maxIDLen (which the
// scanner does not report). The offer id of such a document is unknown.
func (s *jsonScanner) Ambiguous() bool { return s.ambiguous }

// Err reports whether the input so far is not JSON.
func (s *jsonScanner) Err() bool { return s.state == stErr }

// Complete reports whether a whole JSON document was read.
func (s *jsonScanner) Complete() bool {
	return s.state == stDone || (s.state == stNumber && s.depth == 0 && numEnds(s.num))
}

// Finish ends the document: a number at the root ends at EOF.
func (s *jsonScanner) Finish() {
	if s.state == stNumber && s.depth == 0 {
		if !numEnds(s.num) {
			s.fail()
			return
		}
		s.endValue()
		s.state = stDone
	}
}

// onPath reports whether the value about to start (a child of the container at the current
// depth, or the root) is at the scanner's path, and whether it is a prefix of it.
func (s *jsonScanner) valuePos() (target, inside bool) {
	if s.depth == 0 {
		return false, len(s.path) > 0
	}
	if !s.child[s.depth] {
		return false, false
	}
	return s.depth == len(s.path), s.depth < len(s.path)
}

func (s *jsonScanner) fail() { s.state = stErr }

// Write scans p. It never fails; Err tells whether the input was JSON.
func (s *jsonScanner) Write(p []byte) (int, error) {
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch s.state {
		case stErr, stDone:
			if s.state == stDone && isSpace(c) {
				continue
			}
			s.state = stErr
			return len(p), nil
		case stString:
			// Fast path: copy runs of plain characters.
			j := i
			for j < len(p) && p[j] != '"' && p[j] != '\\' && p[j] >= 0x20 {
				j++
			}
			if j > i {
				s.flushSurrogate()
				s.strBytes(p[i:j])
				i = j - 1
				continue
			}
			switch {
			case c == '"':
				s.flushSurrogate()
				s.endString()
			case c == '\\':
				s.state = stEsc
			default:
				s.fail()
			}
		case stEsc:
			s.state = stString
			var r byte
			switch c {
			case '"', '\\', '/':
				r = c
			case 'b':
				r = '\b'
			case 'f':
				r = '\f'
			case 'n':
				r = '\n'
			case 'r':
				r = '\r'
			case 't':
				r = '\t'
			case 'u':
				s.state, s.hex, s.hexN = stHex, 0, 0
				continue
			default:
				s.fail()
				continue
			}
			s.flushSurrogate()
			s.tmp[0] = r
			s.strBytes(s.tmp[:1])
		case stHex:
			var v byte
			switch {
			case c >= '0' && c <= '9':
				v = c - '0'
			case c >= 'a' && c <= 'f':
				v = c - 'a' + 10
			case c >= 'A' && c <= 'F':
				v = c - 'A' + 10
			default:
				s.fail()
				continue
			}
			s.hex = s.hex<<4 | rune(v)
			s.hexN++
			if s.hexN == 4 {
				s.state = stString
				s.strRune(s.hex)
			}
		case stNumber:
			if next := numNext(s.num, c); next != numBad {
				s.num = next
				if s.capture {
					s.addVal(c)
				}
				continue
			}
			if !numEnds(s.num) {
				s.fail()
				continue
			}
			s.endValue()
			s.state = stAfter
			i-- // rescan c
			if s.depth == 0 {
				s.state = stDone
			}
		case stLiteral:
			if c != s.lit[s.litN] {
				s.fail()
				continue
			}
			s.litN++
			if s.litN == len(s.lit) {
				s.state = stAfter
				s.afterValue()
			}
		default:
			if isSpace(c) {
				continue
			}
			s.structural(c)
		}
	}
	return len(p), nil
}

// structural handles a non-space byte outside strings, numbers and literals.
func (s *jsonScanner) structural(c byte) {
	switch s.state {
	case stObjFirst, stObjKey:
		if c == '}' && s.state == stObjFirst {
			s.pop()
			return
		}
		if c != '"' {
			s.fail()
			return
		}
		s.inKey, s.keyLen, s.keyOver = true, 0, false
		s.state = stString
	case stColon:
		if c != ':' {
			s.fail()
			return
		}
		s.state = stValue
	case stAfter:
		if s.depth == 0 {
			s.fail()
			return
		}
		switch {
		case c == ',' && s.isObj[s.depth]:
			s.state = stObjKey
		case c == ',':
			s.state = stValue
		case c == '}' && s.isObj[s.depth], c == ']' && !s.isObj[s.depth]:
			s.pop()
		default:
			s.fail()
		}
	case stArrFirst:
		if c == ']' {
			s.pop()
			return
		}
		s.startValue(c)
	case stValue:
		s.startValue(c)
	}
}

func (s *jsonScanner) startValue(c byte) {
	target, inside := s.valuePos()
	switch {
	case c == '{' || c == '[':
		if s.depth == maxScanDepth {
			s.fail()
			return
		}
		s.depth++
		d := s.depth
		s.isObj[d] = c == '{'
		s.prefix[d] = inside
		if c == '{' {
			s.child[d] = false
			s.state = stObjFirst
		} else {
			s.child[d] = inside && s.path[d-1].elem
			s.state = stArrFirst
		}
	case c == '"':
		s.inKey = false
		s.beginCapture(target)
		s.state = stString
	case c == '-' || (c >= '0' && c <= '9'):
		s.beginCapture(target)
		if s.capture {
			s.addVal(c)
		}
		s.num, s.numNeg = numNext(numStart, c), c == '-'
		s.state = stNumber
	case c == 't':
		s.lit, s.litN, s.state = "true", 1, stLiteral
	case c == 'f':
		s.lit, s.litN, s.state = "false", 1, stLiteral
	case c == 'n':
		s.lit, s.litN, s.state = "null", 1, stLiteral
	default:
		s.fail()
	}
}

func (s *jsonScanner) beginCapture(target bool) {
	s.capture = target
	s.valLen = 0
}

func (s *jsonScanner) addVal(c byte) {
	if s.valLen < maxIDLen {
		s.val[s.valLen] = c
	}
	s.valLen++
}

// endValue reports a captured value: its hash, after replacing each byte of invalid UTF-8 with
// U+FFFD as encoding/json does. Values longer than maxIDLen are not reported.
func (s *jsonScanner) endValue() {
	if !s.capture {
		return
	}
	s.capture = false
	if s.strict && (s.valLen > maxIDLen || s.state == stNumber && !s.canonicalInt()) {
		s.ambiguous = true
		return
	}
	if s.valLen > maxIDLen || s.found == nil {
		return
	}
	v := s.val[:s.valLen]
	if utf8.Valid(v) {
		s.found(s.ids.sum(v))
		return
	}
	// Invalid UTF-8 hashes as encoding/json decodes it: each bad byte is U+FFFD.
	s.h.reset()
	for len(v) > 0 {
		r, n := utf8.DecodeRune(v)
		if r == utf8.RuneError && n == 1 {
			s.h.writeString("\uFFFD")
		} else {
			s.h.write(v[:n])
		}
		v = v[n:]
	}
	s.found(s.h.sum64())
}

func (s *jsonScanner) pop() {
	s.depth--
	s.state = stAfter
	s.afterValue()
}

// afterValue is called when a value ended; at the root, the document is complete.
func (s *jsonScanner) afterValue() {
	if s.depth == 0 {
		s.state = stDone
	}
}

func (s *jsonScanner) endString() {
	if s.inKey {
		s.inKey = false
		d := s.depth
		st := pathStep{}
		if d <= len(s.path) {
			st = s.path[d-1]
		}
		s.child[d] = false
		if s.prefix[d] && d <= len(s.path) && !st.elem && !s.keyOver {
			k := s.keyBuf[:s.keyLen]
			if st.fold {
				s.child[d] = foldEqual(k, st.name)
			} else {
				s.child[d] = string(k) == st.name
			}
		}
		s.state = stColon
		return
	}
	s.endValue()
	s.state = stAfter
	s.afterValue()
}

func (s *jsonScanner) strBytes(b []byte) {
	if s.inKey {
		if s.keyLen+len(b) > maxKeyLen {
			s.keyOver = true
			return
		}
		s.keyLen += copy(s.keyBuf[s.keyLen:], b)
		return
	}
	if s.capture {
		if s.valLen+len(b) <= maxIDLen {
			copy(s.val[s.valLen:], b)
		}
		s.valLen += len(b)
	}
}

// strRune adds a \uXXXX escape, joining UTF-16 surrogate pairs as encoding/json does and
// replacing a lone surrogate with U+FFFD.
func (s *jsonScanner) strRune(r rune) {
	switch {
	case r >= 0xD800 && r < 0xDC00:
		s.flushSurrogate()
		s.highSurr = r
		return
	case r >= 0xDC00 && r < 0xE000:
		if s.highSurr != 0 {
			r = 0x10000 + (s.highSurr-0xD800)<<10 + (r - 0xDC00)
			s.highSurr = 0
		} else {
			r = utf8.RuneError
		}
	default:
		s.flushSurrogate()
	}
	s.emitRune(r)
}

func (s *jsonScanner) flushSurrogate() {
	if s.highSurr != 0 {
		s.highSurr = 0
		s.emitRune(utf8.RuneError)
	}
}

func (s *jsonScanner) emitRune(r rune) {
	n := utf8.EncodeRune(s.tmp[:], r)
	s.strBytes(s.tmp[:n])
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// foldEqual reports whether the object key k matches the struct field name as
// json.Unmarshal (encoding/json v1, and v1 semantics on json/v2) matches it: foldKey(k) equals
// foldKey(name), rune by rune. A key of invalid UTF-8 has U+FFFD for each bad byte, as
// encoding/json unquotes it. It allocates nothing.
func foldEqual(k []byte, name string) bool {
	for len(k) > 0 && len(name) > 0 {
		a, n := utf8.DecodeRune(k)
		b, m := utf8.DecodeRuneInString(name)
		if foldKey(a) != foldKey(b) {
			return false
		}
		k, name = k[n:], name[m:]
	}
	return len(k) == 0 && len(name) == 0
}

// foldKey is the fold of one rune in encoding/json's foldName: an ASCII letter to upper case,
// any other ASCII byte unchanged, and a rune outside ASCII to the smallest rune of its
// unicode.SimpleFold orbit, so that U+017F (ſ) folds to 'S' and U+212A (Kelvin sign) to 'K',
// as 's' and 'k' do.
func foldKey(r rune) rune {
	if r < utf8.RuneSelf {
		if 'a' <= r && r <= 'z' {
			r -= 'a' - 'A'
		}
		return r
	}
	for {
		r2 := unicode.SimpleFold(r)
		if r2 <= r {
			return r2
		}
		r = r2
	}
}

// States of a number, by the grammar of RFC 8259: -? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)?
const (
	numBad   = iota // not a number
	numStart        // nothing read yet
	numMinus        // after '-': a digit must follow
	numZero         // the integer part is 0
	numInt          // in the digits of an integer part not starting with 0
	numDot          // after '.': a digit must follow
	numFrac         // in the fraction digits
	numE            // after 'e' or 'E': a sign or a digit must follow
	numESign        // after the exponent's sign: a digit must follow
	numExp          // in the exponent digits
)

// numNext is the state after c in state st, or numBad when c does not continue the number.
func numNext(st uint8, c byte) uint8 {
	digit := c >= '0' && c <= '9'
	switch st {
	case numStart:
		if c == '-' {
			return numMinus
		}
		fallthrough
	case numMinus:
		switch {
		case c == '0':
			return numZero
		case digit:
			return numInt
		}
	case numZero, numInt:
		switch {
		case digit && st == numInt:
			return numInt
		case c == '.':
			return numDot
		case c == 'e' || c == 'E':
			return numE
		}
	case numDot, numFrac:
		switch {
		case digit:
			return numFrac
		case st == numFrac && (c == 'e' || c == 'E'):
			return numE
		}
	case numE:
		switch {
		case c == '+' || c == '-':
			return numESign
		case digit:
			return numExp
		}
	case numESign, numExp:
		if digit {
			return numExp
		}
	}
	return numBad
}

// numEnds reports whether a number may end in state st.
func numEnds(st uint8) bool {
	return st == numZero || st == numInt || st == numFrac || st == numExp
}

// canonicalInt reports whether the number just scanned is an integer in its one canonical
// form: no fraction, no exponent, and not -0.
func (s *jsonScanner) canonicalInt() bool {
	return s.num == numInt || s.num == numZero && !s.numNeg
}
