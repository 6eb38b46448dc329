package service

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// Limits on every JSON document a handler decodes (DecodeJSON applies them).
// A document within them can be stored, embedded a few levels deeper in a
// response and decoded again without reaching encoding/json's own limits.
const (
	MaxJSONDepth    = 32    // nesting of objects and arrays
	MaxJSONElements = 65536 // values (objects, arrays, strings, numbers, literals), not counting object keys
	MaxJSONString   = 65536 // bytes of one string or key as written in the input, escapes not decoded
)

// ErrJSONLimit is wrapped by every error of CheckJSON.
var ErrJSONLimit = errors.New("service: JSON over limits")

// CheckJSON reports the first way data breaks the limits:
//
//  1. it is not valid UTF-8 (RFC 8259 requires it, and encoding/json would
//     silently replace invalid bytes with U+FFFD, so the text it decodes
//     would differ from the signed body);
//  2. a \u escape is a lone UTF-16 surrogate (encoding/json would silently
//     decode it as U+FFFD, too);
//  3. it nests objects and arrays deeper than MaxJSONDepth;
//  4. it holds more than MaxJSONElements values;
//  5. a string or key is longer than MaxJSONString bytes.
//
// It does not otherwise check the syntax (json.Unmarshal does that). It
// never panics, runs in time linear in len(data) and allocates nothing
// unless it fails.
func CheckJSON(data []byte) error {
	if !utf8.Valid(data) {
		return fmt.Errorf("%w: invalid UTF-8 at byte %d", ErrJSONLimit, firstInvalidUTF8(data))
	}
	var (
		depth   int
		values  int
		inToken bool // inside a number or literal
		// pending is true after a string until the next significant byte,
		// which tells whether it was a key (':') or a value (anything else).
		pending bool
	)
	count := func() error {
		values++
		if values > MaxJSONElements {
			return fmt.Errorf("%w: more than %d values", ErrJSONLimit, MaxJSONElements)
		}
		return nil
	}
	for i := 0; i < len(data); i++ {
		c := data[i]
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			inToken = false
			continue
		}
		if pending {
			pending = false
			if c != ':' {
				if err := count(); err != nil {
					return err
				}
			}
		}
		switch c {
		case '"':
			inToken = false
			end, err := scanString(data, i)
			if err != nil {
				return err
			}
			i = end
			pending = true
		case '{', '[':
			inToken = false
			depth++
			if depth > MaxJSONDepth {
				return fmt.Errorf("%w: nested deeper than %d levels", ErrJSONLimit, MaxJSONDepth)
			}
			if err := count(); err != nil {
				return err
			}
		case '}', ']':
			inToken = false
			if depth > 0 {
				depth--
			}
		case ',', ':':
			inToken = false
		default:
			if !inToken {
				inToken = true
				if err := count(); err != nil {
					return err
				}
			}
		}
	}
	if pending {
		return count()
	}
	return nil
}

// scanString checks the string whose opening quote is data[start] and
// returns the index of its closing quote, or len(data) if there is none.
func scanString(data []byte, start int) (end int, err error) {
	i := start + 1
	for ; i < len(data) && data[i] != '"'; i++ {
		if data[i] != '\\' {
			continue
		}
		i++ // the escaped byte; a \" or \\ does not end the string
		if i >= len(data) || data[i] != 'u' {
			continue
		}
		u, ok := hex4(data, i+1)
		if !ok {
			continue // a syntax error, json.Unmarshal reports it
		}
		switch {
		case 0xD800 <= u && u < 0xDC00:
			// A high surrogate must be followed by \u and a low one.
			if i+10 < len(data) && data[i+5] == '\\' && data[i+6] == 'u' {
				if lo, ok := hex4(data, i+7); ok && 0xDC00 <= lo && lo < 0xE000 {
					i += 10
					continue
				}
			}
			return 0, fmt.Errorf("%w: invalid UTF-16 escape \\u%04X at byte %d (a high surrogate with no low surrogate after it)", ErrJSONLimit, u, i-1)
		case 0xDC00 <= u && u < 0xE000:
			return 0, fmt.Errorf("%w: invalid UTF-16 escape \\u%04X at byte %d (a low surrogate with no high surrogate before it)", ErrJSONLimit, u, i-1)
		}
		i += 4
	}
	if n := i - start - 1; n > MaxJSONString {
		return 0, fmt.Errorf("%w: string at byte %d longer than %d bytes", ErrJSONLimit, start, MaxJSONString)
	}
	return i, nil
}

// firstInvalidUTF8 returns the offset of the first byte of data that does
// not start a valid UTF-8 sequence, or len(data).
func firstInvalidUTF8(data []byte) int {
	for i := 0; i < len(data); {
		r, n := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(data)
}

// hex4 decodes the four hex digits at data[i:i+4].
func hex4(data []byte, i int) (rune, bool) {
	if i+4 > len(data) {
		return 0, false
	}
	var r rune
	for _, c := range data[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
