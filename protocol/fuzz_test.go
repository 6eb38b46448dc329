package protocol_test

import (
	"bytes"
	"testing"

	"github.com/duet-bft/duet/protocol"
)

// FuzzDecodeBatch checks that DecodeBatch never panics and is canonical:
// whatever it accepts is valid and re-encodes to exactly the input.
func FuzzDecodeBatch(f *testing.F) {
	full := testBatch()
	f.Add(protocol.EncodeBatch(full))
	for i := range full.Bundles {
		f.Add(protocol.EncodeBatch(&protocol.Batch{Bundles: full.Bundles[i : i+1]}))
	}
	f.Add([]byte(batchHeader(1).ids().u(1).op(5).u(1).s("k").u(2).sig()))
	f.Add([]byte{})
	f.Add([]byte{0xD3, 0x00})
	f.Add([]byte(batchHeader(1 << 40)))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := protocol.DecodeBatch(data)
		if err != nil {
			if b != nil {
				t.Fatalf("DecodeBatch returned a batch with error %v", err)
			}
			return
		}
		if len(b.Bundles) == 0 {
			t.Fatal("DecodeBatch accepted an empty batch")
		}
		for i := range b.Bundles {
			if err := b.Bundles[i].Validate(); err != nil {
				t.Fatalf("decoded bundle %d fails Validate: %v", i, err)
			}
		}
		if got := protocol.EncodeBatch(b); !bytes.Equal(got, data) {
			t.Fatalf("not canonical: EncodeBatch(DecodeBatch(x)):\ngot  %x\nwant %x", got, data)
		}
	})
}

// FuzzDecodeOutcomes checks that DecodeOutcomes never panics and is
// canonical.
func FuzzDecodeOutcomes(f *testing.F) {
	f.Add(protocol.EncodeOutcomes(testOutcomes()))
	f.Add(protocol.EncodeOutcomes(nil))
	f.Add(protocol.EncodeOutcomes(testOutcomes()[:1]))
	f.Add([]byte{})
	f.Add([]byte(outcomesHeader(1 << 40)))
	f.Fuzz(func(t *testing.T, data []byte) {
		outs, err := protocol.DecodeOutcomes(data)
		if err != nil {
			return
		}
		if got := protocol.EncodeOutcomes(outs); !bytes.Equal(got, data) {
			t.Fatalf("not canonical: EncodeOutcomes(DecodeOutcomes(x)):\ngot  %x\nwant %x", got, data)
		}
	})
}
