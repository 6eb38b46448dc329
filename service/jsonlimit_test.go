package service

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
)

// nestArrays returns n nested arrays around v.
func nestArrays(n int, v string) string {
	return strings.Repeat("[", n) + v + strings.Repeat("]", n)
}

// nestObjects returns n nested objects {"a":...} around v.
func nestObjects(n int, v string) string {
	return strings.Repeat(`{"a":`, n) + v + strings.Repeat("}", n)
}

// flatArray returns an array of n values v: n+1 values in all.
func flatArray(n int, v string) string {
	if n == 0 {
		return "[]"
	}
	return "[" + strings.Repeat(v+",", n-1) + v + "]"
}

// flatObject returns an object with n members "k<i>":v: n+1 values in all,
// and n keys.
func flatObject(n int, v string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"k` + strconv.Itoa(i) + `":` + v)
	}
	b.WriteByte('}')
	return b.String()
}

func TestCheckJSON(t *testing.T) {
	long := strings.Repeat("x", MaxJSONString)
	tests := []struct {
		name string
		in   string
		want string // "" if the document passes, else a part of the error
	}{
		{"empty object", `{}`, ""},
		{"empty array", `[]`, ""},
		{"empty input", ``, ""},
		{"scalar", `"x"`, ""},
		{"whitespace", " \t\r\n{ \"a\" : [ 1 , true ] } \n", ""},

		{"arrays 32 deep", nestArrays(MaxJSONDepth, ""), ""},
		{"arrays 33 deep", nestArrays(MaxJSONDepth+1, ""), "nested deeper than 32 levels"},
		{"objects 32 deep", nestObjects(MaxJSONDepth, "1"), ""},
		{"objects 33 deep", nestObjects(MaxJSONDepth+1, "1"), "nested deeper than 32 levels"},
		{"mixed 33 deep", nestObjects(16, nestArrays(17, "")), "nested deeper than"},
		{"siblings do not add up", "[" + strings.Repeat(nestArrays(31, "")+",", 100) + "1]", ""},
		{"unclosed 33 deep", strings.Repeat("[", 33), "nested deeper than"},
		{"stray closers do not go below zero", "]]]]" + nestArrays(32, ""), ""},
		{"stray closers do not go below zero, 33 deep", "]]]]" + nestArrays(33, ""), "nested deeper than"},
		{"checks 9,999 deep", `{"passed":true,"checks":` + nestObjects(9999, "{}") + `}`, "nested deeper than 32 levels"},

		{"brackets in a string", `{"a":"[[[[\"]]]"}`, ""},
		{"33 brackets in a string", `["` + strings.Repeat("[{", 33) + `"]`, ""},
		{"escaped backslash ends the string", nestArrays(31, `"\\"`), ""},
		{"escaped backslash, then brackets", `["\\", ` + nestArrays(32, "") + `]`, "nested deeper than"},
		{"escaped quote keeps the string open", `["\"` + strings.Repeat("[", 40) + `"]`, ""},
		{"brackets in a key", `{"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[":1}`, ""},

		{"invalid UTF-8 in a string", "[\"a\xffb\"]", "invalid UTF-8 at byte 3"},
		{"invalid UTF-8 outside strings", "[1,\xff]", "invalid UTF-8 at byte 3"},
		{"truncated UTF-8", "\"\xc3\"", "invalid UTF-8 at byte 1"},
		{"overlong UTF-8", "\"\xc0\xaf\"", "invalid UTF-8"},
		{"UTF-8 encoded surrogate", "\"\xed\xa0\x80\"", "invalid UTF-8"},
		{"valid UTF-8", "\"h\u00e9llo \U0001F600\ufffd\"", ""},

		{"lone high surrogate", `"\ud800"`, `invalid UTF-16 escape \uD800 at byte 1`},
		{"lone high surrogate at the end", `["x\uDBFF`, `invalid UTF-16 escape \uDBFF`},
		{"high surrogate, then a letter", `"\ud83dx"`, "invalid UTF-16 escape"},
		{"high surrogate, then a BMP escape", `"\ud83d\u0041"`, "invalid UTF-16 escape"},
		{"two high surrogates", `"\ud83d\ud83d"`, "invalid UTF-16 escape"},
		{"high surrogate, then an escaped u", `"\ud83d\\ude00"`, "invalid UTF-16 escape"},
		{"lone low surrogate", `"\udc00"`, `invalid UTF-16 escape \uDC00`},
		{"low, then high surrogate", `"\ude00\ud83d"`, "invalid UTF-16 escape"},
		{"lone surrogate in a key", `{"\udfff":1}`, "invalid UTF-16 escape"},
		{"high surrogate, then U+E000", `"\ud83d\ue000"`, "invalid UTF-16 escape"},
		{"high surrogate, then U+DBFF", `"\ud83d\udbff"`, "invalid UTF-16 escape"},
		{"surrogate pair", `"\ud83d\ude00"`, ""},
		{"surrogate pair, upper case", `"\uD83D\uDE00"`, ""},
		{"highest pair", `"\udbff\udfff"`, ""},
		{"BMP escapes around the surrogates", `"\ud7ff\ue000\u0000\uffff"`, ""},
		{"escaped backslash, then ud800", `"\\ud800"`, ""},
		{"short escape", `"\ud8"`, ""},

		{"values at the limit", flatArray(MaxJSONElements-1, "0"), ""},
		{"values one over", flatArray(MaxJSONElements, "0"), "more than 65536 values"},
		{"strings at the limit", flatArray(MaxJSONElements-1, `""`), ""},
		{"strings one over", flatArray(MaxJSONElements, `""`), "more than 65536 values"},
		{"literals one over", flatArray(MaxJSONElements, "null"), "more than 65536 values"},
		{"containers one over", flatArray(MaxJSONElements, "{}"), "more than 65536 values"},
		{"a trailing string counts", flatArray(MaxJSONElements-1, "0") + ` "x"`, "more than 65536 values"},
		{"keys do not count", flatObject(MaxJSONElements-1, "1"), ""},
		{"members one over", flatObject(MaxJSONElements, "1"), "more than 65536 values"},
		{"string values in an object one over", flatObject(MaxJSONElements, `"v"`), "more than 65536 values"},

		{"string at the limit", `["` + long + `"]`, ""},
		{"string one over", `["` + long + `x"]`, "string at byte 1 longer than 65536 bytes"},
		{"escapes count as written", `["` + long[2:] + `\n"]`, ""},
		{"escapes count as written, one over", `["` + long[1:] + `\n"]`, "longer than 65536 bytes"},
		{"key one over", `{"` + long + `x":1}`, "longer than 65536 bytes"},
		{"unterminated string one over", `["` + long + `x`, "longer than 65536 bytes"},
	}
	for _, tt := range tests {
		err := CheckJSON([]byte(tt.in))
		if tt.want == "" {
			if err != nil {
				t.Errorf("%s: CheckJSON = %v, want nil", tt.name, err)
			}
			continue
		}
		if !errors.Is(err, ErrJSONLimit) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: CheckJSON = %v, want an ErrJSONLimit containing %q", tt.name, err, tt.want)
		}
	}
}

func TestCheckJSONAllocs(t *testing.T) {
	doc := []byte(nestObjects(MaxJSONDepth-1, flatArray(100, `"x\"\ud83d\ude00"`)))
	if got := testing.AllocsPerRun(10, func() {
		if err := CheckJSON(doc); err != nil {
			t.Fatal(err)
		}
	}); got != 0 {
		t.Errorf("CheckJSON allocates %v times, want 0", got)
	}
}

// TestJSONReplacesSilently shows why CheckJSON refuses invalid UTF-8 and
// lone surrogates: encoding/json decodes both as U+FFFD without an error,
// so what a handler stores would differ from what the actor signed.
func TestJSONReplacesSilently(t *testing.T) {
	for _, in := range []string{"\"\xff\"", `"\ud800"`, `"\udc00"`} {
		var got string
		if err := json.Unmarshal([]byte(in), &got); err != nil || got != "\ufffd" {
			t.Errorf("json.Unmarshal(%q) = %q, %v; want %q, nil", in, got, err, "\ufffd")
		}
		if err := CheckJSON([]byte(in)); !errors.Is(err, ErrJSONLimit) {
			t.Errorf("CheckJSON(%q) = %v, want ErrJSONLimit", in, err)
		}
	}
}

// jsonGen writes a random JSON document and records the measures CheckJSON
// limits.
type jsonGen struct {
	rng      *rand.Rand
	b        []byte
	maxDepth int // nesting the generator may reach

	depth, deepest, values, longest int
}

var (
	// stringPieces are the bits strings are made of, each as written.
	stringPieces = []string{"a", "Z", " ", "[", "]", "{", "}", ",", ":", `\"`, `\\`, `\/`, `\b`, `\f`,
		`\n`, `\r`, `\t`, `\u0000`, `\u00e9`, `\uD7FF`, `\uE000`, `\uffff`, `\ud83d\ude00`, `\uDBFF\uDFFF`,
		"\u00e9", "\u20ac", "\U0001F600", "\ufffd", `\\u`, `\\ud800`}
	numbers  = []string{"0", "-0", "1", "-17", "3.25", "1e10", "-0.5E-3", "12345678901234567890", "1E+300"}
	literals = []string{"true", "false", "null"}
	spaces   = []string{"", "", "", " ", "\n", "\t", "\r\n  "}
)

func (g *jsonGen) space() { g.b = append(g.b, spaces[g.rng.IntN(len(spaces))]...) }

func (g *jsonGen) str(n int) {
	g.b = append(g.b, '"')
	start := len(g.b)
	for range n {
		g.b = append(g.b, stringPieces[g.rng.IntN(len(stringPieces))]...)
	}
	g.longest = max(g.longest, len(g.b)-start)
	g.b = append(g.b, '"')
}

// value writes a value; on the spine it nests down to maxDepth.
func (g *jsonGen) value(spine bool) {
	g.values++
	g.space()
	k := g.rng.IntN(10)
	if spine && g.depth < g.maxDepth {
		k = 0
	}
	switch {
	case k < 3 && g.depth < g.maxDepth:
		g.depth++
		g.deepest = max(g.deepest, g.depth)
		open, close := byte('['), byte(']')
		obj := g.rng.IntN(2) == 0
		if obj {
			open, close = '{', '}'
		}
		g.b = append(g.b, open)
		n := g.rng.IntN(4)
		if g.depth > 2 && g.rng.IntN(3) > 0 {
			n = min(n, 1) // keep deep documents small
		}
		if spine {
			n = max(n, 1)
		}
		for i := range n {
			if i > 0 {
				g.space()
				g.b = append(g.b, ',')
			}
			if obj {
				g.space()
				g.str(g.rng.IntN(4))
				g.space()
				g.b = append(g.b, ':')
			}
			g.value(spine && i == 0)
		}
		g.space()
		g.b = append(g.b, close)
		g.depth--
	case k < 6:
		g.str(g.rng.IntN(8))
	case k < 8:
		g.b = append(g.b, numbers[g.rng.IntN(len(numbers))]...)
	default:
		g.b = append(g.b, literals[g.rng.IntN(len(literals))]...)
	}
	g.space()
}

func (g *jsonGen) within() bool {
	return g.deepest <= MaxJSONDepth && g.values <= MaxJSONElements && g.longest <= MaxJSONString
}

// measure computes depth and value count with encoding/json's tokenizer,
// to check the generator's own bookkeeping.
func measure(t *testing.T, data []byte) (deepest, values int) {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	depth := 0
	inObject := []bool{false}
	keyNext := false
	for {
		tok, err := d.Token()
		if err != nil {
			break
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			values++
			depth++
			deepest = max(deepest, depth)
			inObject = append(inObject, tok == json.Delim('{'))
			keyNext = tok == json.Delim('{')
			continue
		case json.Delim('}'), json.Delim(']'):
			depth--
			inObject = inObject[:len(inObject)-1]
			keyNext = inObject[len(inObject)-1]
			continue
		}
		if keyNext {
			keyNext = false
			continue
		}
		values++
		keyNext = inObject[len(inObject)-1]
	}
	return deepest, values
}

// TestCheckJSONRandom generates documents around the limits: CheckJSON
// passes exactly those within them, and json.Unmarshal decodes those.
func TestCheckJSONRandom(t *testing.T) {
	for _, seed := range []uint64{1, 2, uint64(time.Now().UnixNano())} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { checkJSONRandom(t, seed) })
	}
}

// checkJSONRandom runs TestCheckJSONRandom with one seed; every failure
// names it, to rerun put it in the list above.
func checkJSONRandom(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	for i := range 1000 {
		g := &jsonGen{rng: rng, maxDepth: rng.IntN(MaxJSONDepth + 3)}
		if rng.IntN(2) == 0 {
			g.maxDepth = MaxJSONDepth - 2 + rng.IntN(5)
		}
		switch i % 100 {
		case 0: // around the value limit
			n := MaxJSONElements - 3 + rng.IntN(6)
			g.values = n + 1
			g.b = append(g.b, flatArray(n, "0")...)
		case 1: // around the string limit
			g.values = 1
			g.b = append(g.b, '"')
			for len(g.b) < MaxJSONString-16 {
				g.b = append(g.b, stringPieces[rng.IntN(len(stringPieces))]...)
			}
			g.longest = MaxJSONString - 1 + rng.IntN(3)
			g.b = append(g.b, strings.Repeat("x", g.longest-(len(g.b)-1))...)
			g.b = append(g.b, '"')
		default:
			g.value(rng.IntN(2) == 0)
		}
		data := g.b
		if !json.Valid(data) {
			t.Fatalf("seed %d, doc %d: generated invalid JSON %q", seed, i, data)
		}
		if i%100 > 1 {
			if deepest, values := measure(t, data); deepest != g.deepest || values != g.values {
				t.Fatalf("seed %d, doc %d: encoding/json counts depth %d and %d values, the generator %d and %d, in %q",
					seed, i, deepest, values, g.deepest, g.values, data)
			}
		}
		err := CheckJSON(data)
		if want := g.within(); (err == nil) != want {
			t.Fatalf("seed %d, doc %d (depth %d, %d values, longest string %d): CheckJSON = %v, want within limits %v; doc %.200q",
				seed, i, g.deepest, g.values, g.longest, err, want, data)
		}
		if err != nil {
			continue
		}
		var v any
		if err := json.Unmarshal(data, &v); err != nil {
			t.Fatalf("seed %d, doc %d: json.Unmarshal = %v for %q", seed, i, err, data)
		}
	}
}

// decodeAny decodes a valid JSON document, keeping numbers as written
// (json.Unmarshal into any fails on 1e400, which is not out of CheckJSON's
// limits but out of float64's range).
func decodeAny(data []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	err := d.Decode(&v)
	return v, err
}

// FuzzCheckJSON checks that CheckJSON never panics, and that whatever
// valid JSON it accepts decodes, still decodes embedded 8 levels deeper,
// and decodes again after re-encoding.
func FuzzCheckJSON(f *testing.F) {
	for _, s := range []string{`{}`, `[]`, `{"a":"[[[[\"]]]"}`, `"\ud83d\ude00"`, `"\ud800"`, "\"\xff\"",
		`{"passed":true,"checks":{"a":{"a":{}}}}`, nestArrays(MaxJSONDepth, "1"), nestArrays(MaxJSONDepth+1, ""),
		`{"k":[1,-2.5e3,true,false,null,"x\\\"y"]}`, `1e400`, `"\\ud800"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if CheckJSON(data) != nil || !json.Valid(data) {
			return
		}
		v, err := decodeAny(data)
		if err != nil {
			t.Fatalf("CheckJSON and json.Valid accept %q, decoding fails: %v", data, err)
		}
		deeper := nestObjects(8, string(data))
		if _, err := decodeAny([]byte(deeper)); err != nil {
			t.Fatalf("%q nested 8 levels deeper does not decode: %v", data, err)
		}
		again, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("re-encoding %q: %v", data, err)
		}
		if _, err := decodeAny(again); err != nil {
			t.Fatalf("%q re-encoded as %q does not decode: %v", data, again, err)
		}
	})
}
