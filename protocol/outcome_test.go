package protocol_test

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/duet-bft/duet/protocol"
)

func TestCodeString(t *testing.T) {
	tests := []struct {
		code protocol.Code
		want string
	}{
		{protocol.CodeOK, "OK"},
		{protocol.CodeMalformed, "MALFORMED"},
		{protocol.CodeUnauthenticated, "UNAUTHENTICATED"},
		{protocol.CodeConflict, "CONFLICT"},
		{protocol.CodeResultMismatch, "RESULT_MISMATCH"},
		{protocol.CodeAlreadyCommitted, "ALREADY_COMMITTED"},
		{protocol.CodeInvalidSession, "INVALID_SESSION"},
		{protocol.CodeTimeOutOfBounds, "TIME_OUT_OF_BOUNDS"},
		{protocol.CodePermissionDenied, "PERMISSION_DENIED"},
		{protocol.CodeExpired, "EXPIRED"},
		{10, "CODE_10"},
		{1 << 31, "CODE_2147483648"},
		{1<<32 - 1, "CODE_4294967295"},
	}
	for _, tt := range tests {
		if got := tt.code.String(); got != tt.want {
			t.Errorf("Code(%d).String() = %q, want %q", uint32(tt.code), got, tt.want)
		}
	}
}

func testOutcomes() []protocol.Outcome {
	return []protocol.Outcome{
		{Session: "s-1", Code: protocol.CodeOK, Results: seqHash()},
		{Session: "s-2", Code: protocol.CodeConflict},
		{Session: strings.Repeat("x", protocol.MaxIDLen), Code: protocol.CodePermissionDenied, Results: protocol.ResultsDigest(nil)},
		{Session: "", Code: 1 << 31},
	}
}

func TestOutcomesRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		outs []protocol.Outcome
	}{
		{"empty", []protocol.Outcome{}},
		{"one", testOutcomes()[:1]},
		{"several", testOutcomes()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := protocol.EncodeOutcomes(tt.outs)
			got, err := protocol.DecodeOutcomes(enc)
			if err != nil {
				t.Fatalf("DecodeOutcomes: %v", err)
			}
			if !reflect.DeepEqual(got, tt.outs) {
				t.Errorf("DecodeOutcomes(EncodeOutcomes(x)):\ngot  %+v\nwant %+v", got, tt.outs)
			}
			if re := protocol.EncodeOutcomes(got); !bytes.Equal(re, enc) {
				t.Errorf("re-encoding differs:\ngot  %x\nwant %x", re, enc)
			}
		})
	}
}

func TestEncodeOutcomesGolden(t *testing.T) {
	outs := []protocol.Outcome{{Session: "ab", Code: protocol.CodeConflict, Results: seqHash()}}
	want := []byte{0xD2, 0x01, 0x02, 'a', 'b', 0x03}
	for i := 0; i < 32; i++ {
		want = append(want, byte(i))
	}
	if got := protocol.EncodeOutcomes(outs); !bytes.Equal(got, want) {
		t.Errorf("EncodeOutcomes:\ngot  %x\nwant %x", got, want)
	}
}

func TestDecodeOutcomesRejects(t *testing.T) {
	valid := protocol.EncodeOutcomes(testOutcomes())
	h := make([]byte, 32)
	tests := []struct {
		name string
		in   []byte
	}{
		{"nil", nil},
		{"tag only", []byte{0xD2}},
		{"batch tag", append([]byte{0xD3}, valid[1:]...)},
		{"trailing byte", append(append([]byte(nil), valid...), 0)},
		{"non-minimal count", append([]byte{0xD2, 0x84, 0x00}, valid[2:]...)},
		{"non-minimal code", outcomesHeader(1).s("s").raw(0x83, 0x00).raw(h...)},
		{"code above 2^31", outcomesHeader(1).s("s").u(1<<31 + 1).raw(h...)},
		{"code above uint32", outcomesHeader(1).s("s").u(1 << 40).raw(h...)},
		{"session too long", outcomesHeader(1).s(strings.Repeat("x", protocol.MaxIDLen+1)).u(0).raw(h...)},
		{"short results hash", outcomesHeader(1).s("s").u(0).raw(h[:31]...)},
		{"count 1<<40", outcomesHeader(1 << 40)},
		{"count MaxBundles+1", outcomesHeader(protocol.MaxBundles + 1)},
		{"count beyond input", outcomesHeader(2).s("s").u(0).raw(h...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := protocol.DecodeOutcomes(tt.in)
			if err == nil {
				t.Fatalf("DecodeOutcomes = %+v, nil; want an error", got)
			}
			if !errors.Is(err, protocol.ErrMalformed) {
				t.Errorf("DecodeOutcomes error = %v, want one wrapping ErrMalformed", err)
			}
		})
	}
	for i := 0; i < len(valid); i++ {
		if got, err := protocol.DecodeOutcomes(valid[:i]); err == nil {
			t.Fatalf("DecodeOutcomes(first %d of %d bytes) = %+v, nil; want an error", i, len(valid), got)
		}
	}
}
