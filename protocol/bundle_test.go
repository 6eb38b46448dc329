package protocol_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/duet-bft/duet/protocol"
)

// opSpec is an op before signing.
type opSpec struct {
	method, path string
	body         []byte
	time         int64
}

// signedBundle builds a bundle whose ops are signed in a chain by actorKey
// and which is signed by nodeKey. Each op's claimed result is
// ResultHash(200+seq, body).
func signedBundle(session, actor, node string, actorKey, nodeKey ed25519.PrivateKey, specs []opSpec, reads []protocol.Read) protocol.Bundle {
	b := protocol.Bundle{Session: session, Actor: actor, Node: node, Reads: reads}
	prev := protocol.ZeroHash
	for seq, s := range specs {
		exp := min(s.time+60_000, 1<<62)
		msg := protocol.OpBytes(session, uint64(seq), prev, s.method, s.path, s.body, exp)
		b.Ops = append(b.Ops, protocol.Op{
			Method:    s.method,
			Path:      s.path,
			Body:      s.body,
			Signature: ed25519.Sign(actorKey, msg),
			Time:      s.time,
			Expires:   exp,
			Result:    protocol.ResultHash(200+seq, s.body),
		})
		prev = protocol.OpHash(msg)
	}
	b.Sign(nodeKey)
	return b
}

var (
	aliceKey = testKey(1) // actor
	bobKey   = testKey(2) // another actor
	nodeKey  = testKey(3) // L2 node
)

// sessionSpecs is a typical session: start, two steps, commit.
func sessionSpecs(session string) []opSpec {
	return []opSpec{
		{"POST", "/v1/sessions", []byte(`{"purpose":"test"}`), 1_700_000_000_000},
		{"POST", "/v1/packages", []byte(`{"id":"p1","weight":3}`), 1_700_000_000_001},
		{"PATCH", "/v1/packages/p1", []byte(`{"weight":4}`), 1_700_000_000_002},
		{"POST", "/v1/sessions/" + session + "/commit", nil, 1_700_000_000_003},
	}
}

func testBundle() protocol.Bundle {
	return signedBundle("s-1", "alice", "node-1", aliceKey, nodeKey, sessionSpecs("s-1"),
		[]protocol.Read{{Key: "actor/alice", Version: 1}, {Key: "pkg/p0", Version: 0}, {Key: "pkg/p1", Version: 7}})
}

// testBatch holds several bundles exercising empty bodies, empty reads,
// large versions and times, and the longest ids.
func testBatch() *protocol.Batch {
	long := strings.Repeat("z", protocol.MaxIDLen)
	return &protocol.Batch{Bundles: []protocol.Bundle{
		testBundle(),
		signedBundle("s-2", "bob", "node-1", bobKey, nodeKey,
			[]opSpec{{"DELETE", "/v1/sessions/s-2", nil, 0}}, []protocol.Read{}),
		signedBundle(long, long, long, aliceKey, nodeKey,
			[]opSpec{
				{"POST", "/v1/sessions", nil, 1 << 62},
				{"PUT", "/v1/x/" + strings.Repeat("y", 300), bytes.Repeat([]byte{0, 0xff}, 200), 1},
			},
			[]protocol.Read{{Key: "a", Version: 1<<64 - 1}, {Key: "b", Version: 128}, {Key: strings.Repeat("k", protocol.MaxKeyLen), Version: 0}}),
	}}
}

func TestVerifyOps(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(b *protocol.Bundle)
		key    ed25519.PublicKey
		want   int
	}{
		{name: "valid", mutate: func(b *protocol.Bundle) {}, want: -1},
		{name: "wrong actor key", mutate: func(b *protocol.Bundle) {}, key: pub(bobKey), want: 0},
		{name: "forged signature", want: 1, mutate: func(b *protocol.Bundle) {
			// Bob signs what Alice should have signed.
			prev := protocol.OpHash(b.OpSigningBytes(0, protocol.ZeroHash))
			b.Ops[1].Signature = ed25519.Sign(bobKey, b.OpSigningBytes(1, prev))
		}},
		{name: "flipped signature bit", want: 2, mutate: func(b *protocol.Bundle) {
			b.Ops[2].Signature = append([]byte(nil), b.Ops[2].Signature...)
			b.Ops[2].Signature[10] ^= 1
		}},
		{name: "short signature", want: 3, mutate: func(b *protocol.Bundle) {
			b.Ops[3].Signature = b.Ops[3].Signature[:63]
		}},
		{name: "reordered ops", want: 1, mutate: func(b *protocol.Bundle) {
			b.Ops[1], b.Ops[2] = b.Ops[2], b.Ops[1]
		}},
		{name: "dropped op", want: 1, mutate: func(b *protocol.Bundle) {
			b.Ops = append(b.Ops[:1:1], b.Ops[2:]...)
		}},
		{name: "swapped body", want: 2, mutate: func(b *protocol.Bundle) {
			b.Ops[2].Body = []byte(`{"weight":400}`)
		}},
		{name: "swapped bodies of two ops", want: 1, mutate: func(b *protocol.Bundle) {
			b.Ops[1].Body, b.Ops[2].Body = b.Ops[2].Body, b.Ops[1].Body
		}},
		{name: "changed path", want: 1, mutate: func(b *protocol.Bundle) {
			b.Ops[1].Path = "/v1/packages/p2"
		}},
		{name: "changed method", want: 2, mutate: func(b *protocol.Bundle) {
			b.Ops[2].Method = "PUT"
		}},
		{name: "other session", want: 0, mutate: func(b *protocol.Bundle) {
			b.Session = "s-2"
		}},
		{name: "ops of another session", want: 0, mutate: func(b *protocol.Bundle) {
			other := signedBundle("s-2", "alice", "node-1", aliceKey, nodeKey, sessionSpecs("s-1"), nil)
			b.Ops = other.Ops
		}},
		{name: "time and result are not signed by the actor", want: -1, mutate: func(b *protocol.Bundle) {
			b.Ops[1].Time++
			b.Ops[1].Result = protocol.Hash{}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := testBundle()
			tt.mutate(&b)
			key := tt.key
			if key == nil {
				key = pub(aliceKey)
			}
			if got := b.VerifyOps(key); got != tt.want {
				t.Errorf("VerifyOps = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestBundleSignVerifyNode(t *testing.T) {
	b := testBundle()
	if !b.VerifyNode(pub(nodeKey)) {
		t.Fatal("VerifyNode(node key) = false, want true")
	}
	if b.VerifyNode(pub(aliceKey)) {
		t.Error("VerifyNode(actor key) = true, want false")
	}
	if got := string(b.SigningBytes()); !strings.HasPrefix(got, "duet/bundle/v2\n") {
		t.Errorf("SigningBytes starts %q, want prefix %q", got[:20], "duet/bundle/v2\n")
	}
	// The signature is not part of what is signed.
	before := b.SigningBytes()
	b.Signature = make([]byte, 64)
	if got := b.SigningBytes(); !bytes.Equal(got, before) {
		t.Error("SigningBytes depends on the signature")
	}

	tests := []struct {
		name   string
		mutate func(b *protocol.Bundle)
	}{
		{"session", func(b *protocol.Bundle) { b.Session = "s-9" }},
		{"actor", func(b *protocol.Bundle) { b.Actor = "bob" }},
		{"node", func(b *protocol.Bundle) { b.Node = "node-2" }},
		{"read version", func(b *protocol.Bundle) { b.Reads[1].Version = 1 }},
		{"read key", func(b *protocol.Bundle) { b.Reads[1].Key = "pkg/p00" }},
		{"read added", func(b *protocol.Bundle) { b.Reads = append(b.Reads, protocol.Read{Key: "zz", Version: 1}) }},
		{"read removed", func(b *protocol.Bundle) { b.Reads = b.Reads[:2] }},
		{"op time", func(b *protocol.Bundle) { b.Ops[2].Time++ }},
		{"op result hash", func(b *protocol.Bundle) { b.Ops[3].Result[31] ^= 1 }},
		{"op body", func(b *protocol.Bundle) { b.Ops[1].Body = []byte(`{}`) }},
		{"op method", func(b *protocol.Bundle) { b.Ops[2].Method = "PUT" }},
		{"op path", func(b *protocol.Bundle) { b.Ops[2].Path = "/v1/packages/p2" }},
		{"op signature", func(b *protocol.Bundle) {
			b.Ops[0].Signature = append([]byte(nil), b.Ops[0].Signature...)
			b.Ops[0].Signature[0] ^= 1
		}},
		{"op removed", func(b *protocol.Bundle) { b.Ops = b.Ops[:3] }},
		{"node signature bit", func(b *protocol.Bundle) {
			b.Signature = append([]byte(nil), b.Signature...)
			b.Signature[5] ^= 0x80
		}},
		{"node signature truncated", func(b *protocol.Bundle) { b.Signature = b.Signature[:63] }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := testBundle()
			tt.mutate(&b)
			if b.VerifyNode(pub(nodeKey)) {
				t.Errorf("VerifyNode after changing the %s = true, want false", tt.name)
			}
		})
	}
}

func TestBatchRoundTrip(t *testing.T) {
	batch := testBatch()
	for i := range batch.Bundles {
		if err := batch.Bundles[i].Validate(); err != nil {
			t.Fatalf("test bundle %d: Validate: %v", i, err)
		}
	}
	enc := protocol.EncodeBatch(batch)
	got, err := protocol.DecodeBatch(enc)
	if err != nil {
		t.Fatalf("DecodeBatch: %v", err)
	}
	if !reflect.DeepEqual(got, batch) {
		t.Errorf("DecodeBatch(EncodeBatch(b)):\ngot  %+v\nwant %+v", got, batch)
	}
	if re := protocol.EncodeBatch(got); !bytes.Equal(re, enc) {
		t.Errorf("re-encoding differs:\ngot  %x\nwant %x", re, enc)
	}
	for i := range got.Bundles {
		if !got.Bundles[i].VerifyNode(pub(nodeKey)) {
			t.Errorf("decoded bundle %d: VerifyNode = false, want true", i)
		}
	}
	if idx := got.Bundles[0].VerifyOps(pub(aliceKey)); idx != -1 {
		t.Errorf("decoded bundle 0: VerifyOps = %d, want -1", idx)
	}
	// Decoded slices must not alias the input.
	for i := range enc {
		enc[i] = 0
	}
	if !reflect.DeepEqual(got, batch) {
		t.Error("decoded batch changed when the input buffer was overwritten")
	}
}

// enc is an independent, hand-written encoder for building hostile inputs.
type enc []byte

func (e enc) u(v uint64) enc      { return binary.AppendUvarint(e, v) }
func (e enc) s(s string) enc      { return append(e.u(uint64(len(s))), s...) }
func (e enc) b(b []byte) enc      { return append(e.u(uint64(len(b))), b...) }
func (e enc) raw(b ...byte) enc   { return append(e, b...) }
func (e enc) hash() enc           { return append(e, make([]byte, 32)...) }
func (e enc) sig() enc            { return e.b(make([]byte, 64)) }
func (e enc) ids() enc            { return e.s("s-1").s("alice").s("node-1") }
func (e enc) op(t uint64) enc     { return e.s("POST").s("/v1/x").b(nil).sig().u(t).u(t).hash() }
func batchHeader(n uint64) enc    { return enc{0xD3}.u(n) }
func outcomesHeader(n uint64) enc { return enc{0xD2}.u(n) }

func TestHandEncoderMatches(t *testing.T) {
	// The hand encoder and EncodeBatch agree on a simple bundle, so the
	// hostile inputs below differ from valid ones only where intended.
	valid := batchHeader(1).ids().u(1).op(5).u(1).s("k").u(2).u(0).sig()
	b := &protocol.Batch{Bundles: []protocol.Bundle{{
		Session: "s-1", Actor: "alice", Node: "node-1",
		Ops:       []protocol.Op{{Method: "POST", Path: "/v1/x", Signature: make([]byte, 64), Time: 5, Expires: 5}},
		Reads:     []protocol.Read{{Key: "k", Version: 2}},
		Signature: make([]byte, 64),
	}}}
	if got := protocol.EncodeBatch(b); !bytes.Equal(got, valid) {
		t.Fatalf("EncodeBatch:\ngot  %x\nwant %x", got, []byte(valid))
	}
	got, err := protocol.DecodeBatch(valid)
	if err != nil {
		t.Fatalf("DecodeBatch(hand-encoded): %v", err)
	}
	if !reflect.DeepEqual(got, b) {
		t.Errorf("DecodeBatch(hand-encoded):\ngot  %+v\nwant %+v", got, b)
	}
}

func TestDecodeBatchRejects(t *testing.T) {
	valid := protocol.EncodeBatch(testBatch())
	mutated := func(f func(b *protocol.Batch)) []byte {
		b := testBatch()
		f(b)
		return protocol.EncodeBatch(b)
	}
	tests := []struct {
		name string
		in   []byte
	}{
		{"nil", nil},
		{"wrong tag", append([]byte{0xD2}, valid[1:]...)},
		{"zero tag", append([]byte{0x00}, valid[1:]...)},
		{"version 1 tag", append([]byte{0xD1}, valid[1:]...)},
		{"tag only", []byte{0xD3}},
		{"empty batch", []byte{0xD3, 0x00}},
		{"trailing byte", append(append([]byte(nil), valid...), 0)},
		{"two encodings concatenated", append(append([]byte(nil), valid...), valid...)},
		{"non-minimal bundle count", append([]byte{0xD3, 0x83, 0x00}, valid[2:]...)},
		{"non-minimal session length", batchHeader(1).raw(0x83, 0x00).raw([]byte("s-1")...).s("alice").s("node-1").u(1).op(5).u(0).u(0).sig()},
		{"non-minimal op time", batchHeader(1).ids().u(1).s("POST").s("/v1/x").b(nil).sig().raw(0x85, 0x80, 0x00).u(5).hash().u(0).u(0).sig()},
		{"non-minimal op expiry", batchHeader(1).ids().u(1).s("POST").s("/v1/x").b(nil).sig().u(5).raw(0x85, 0x80, 0x00).hash().u(0).u(0).sig()},
		{"non-minimal read version", batchHeader(1).ids().u(1).op(5).u(1).s("k").raw(0x80, 0x00).u(0).sig()},
		{"overlong varint", batchHeader(1).ids().u(1).s("POST").s("/v1/x").b(nil).sig().raw(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f).hash().u(0).u(0).sig()},
		{"unsorted reads", mutated(func(b *protocol.Batch) {
			r := b.Bundles[0].Reads
			r[0], r[1] = r[1], r[0]
		})},
		{"duplicate reads", mutated(func(b *protocol.Batch) {
			b.Bundles[2].Reads[1].Key = b.Bundles[2].Reads[0].Key
		})},
		{"empty read key", mutated(func(b *protocol.Batch) {
			b.Bundles[0].Reads = []protocol.Read{{Key: "", Version: 1}}
		})},
		{"read key too long", mutated(func(b *protocol.Batch) {
			b.Bundles[0].Reads = []protocol.Read{{Key: strings.Repeat("k", protocol.MaxKeyLen+1), Version: 1}}
		})},
		{"bad session id", mutated(func(b *protocol.Batch) { b.Bundles[1].Session = "s 2" })},
		{"empty session id", mutated(func(b *protocol.Batch) { b.Bundles[0].Session = "" })},
		{"session id too long", mutated(func(b *protocol.Batch) { b.Bundles[0].Session = strings.Repeat("s", protocol.MaxIDLen+1) })},
		{"bad actor id", mutated(func(b *protocol.Batch) { b.Bundles[0].Actor = "al/ice" })},
		{"bad node id", mutated(func(b *protocol.Batch) { b.Bundles[2].Node = "" })},
		{"zero ops", mutated(func(b *protocol.Batch) { b.Bundles[1].Ops = nil })},
		{"too many ops", mutated(func(b *protocol.Batch) {
			op := b.Bundles[1].Ops[0]
			b.Bundles[1].Ops = nil
			for range protocol.MaxOps + 1 {
				b.Bundles[1].Ops = append(b.Bundles[1].Ops, op)
			}
		})},
		{"short op signature", mutated(func(b *protocol.Batch) { b.Bundles[0].Ops[1].Signature = b.Bundles[0].Ops[1].Signature[:63] })},
		{"long op signature", mutated(func(b *protocol.Batch) { b.Bundles[0].Ops[1].Signature = make([]byte, 65) })},
		{"empty op signature", mutated(func(b *protocol.Batch) { b.Bundles[0].Ops[1].Signature = nil })},
		{"short node signature", mutated(func(b *protocol.Batch) { b.Bundles[2].Signature = b.Bundles[2].Signature[:63] })},
		{"long node signature", mutated(func(b *protocol.Batch) { b.Bundles[2].Signature = make([]byte, 65) })},
		{"empty node signature", mutated(func(b *protocol.Batch) { b.Bundles[2].Signature = nil })},
		{"GET method", mutated(func(b *protocol.Batch) { b.Bundles[0].Ops[1].Method = "GET" })},
		{"lower-case method", mutated(func(b *protocol.Batch) { b.Bundles[0].Ops[1].Method = "post" })},
		{"long method", mutated(func(b *protocol.Batch) { b.Bundles[0].Ops[1].Method = "POSTPOSTPOST" })},
		{"relative path", mutated(func(b *protocol.Batch) { b.Bundles[0].Ops[1].Path = "v1/packages" })},
		{"path with query", mutated(func(b *protocol.Batch) { b.Bundles[0].Ops[1].Path = "/v1/packages?x=1" })},
		{"path too long", mutated(func(b *protocol.Batch) { b.Bundles[0].Ops[1].Path = "/" + strings.Repeat("p", protocol.MaxPathLen) })},
		{"body too long", mutated(func(b *protocol.Batch) { b.Bundles[0].Ops[1].Body = make([]byte, protocol.MaxBody+1) })},
		{"negative op time", mutated(func(b *protocol.Batch) { b.Bundles[0].Ops[1].Time = -1 })},
		{"op time above 2^62", batchHeader(1).ids().u(1).op(1<<62 + 1).u(0).u(0).sig()},
		{"op expiry before op time", mutated(func(b *protocol.Batch) { b.Bundles[0].Ops[1].Expires = b.Bundles[0].Ops[1].Time - 1 })},
		{"non-minimal attempt", batchHeader(1).ids().u(1).op(5).u(0).raw(0x80, 0x00).sig()},
		{"attempt over MaxAttempt", batchHeader(1).ids().u(1).op(5).u(0).u(protocol.MaxAttempt + 1).sig()},
		{"op expiry above 2^62", batchHeader(1).ids().u(1).s("POST").s("/v1/x").b(nil).sig().u(5).u(1<<62 + 1).hash().u(0).u(0).sig()},
		{"bundle over MaxBundleBytes", mutated(func(b *protocol.Batch) {
			op := b.Bundles[1].Ops[0]
			op.Body = make([]byte, protocol.MaxBody)
			b.Bundles[1].Ops = nil
			for range protocol.MaxBundleBytes/protocol.MaxBody + 1 {
				b.Bundles[1].Ops = append(b.Bundles[1].Ops, op)
			}
		})},
		{"bundle count 1<<40", batchHeader(1 << 40).ids()},
		{"bundle count max uint64", batchHeader(1<<64 - 1)},
		{"bundle count MaxBundles+1", batchHeader(protocol.MaxBundles + 1)},
		{"bundle count beyond input", batchHeader(protocol.MaxBundles)},
		{"op count 1<<40", batchHeader(1).ids().u(1 << 40)},
		{"op count MaxOps+1", batchHeader(1).ids().u(protocol.MaxOps + 1)},
		{"op count beyond input", batchHeader(1).ids().u(protocol.MaxOps)},
		{"read count 1<<40", batchHeader(1).ids().u(1).op(5).u(1 << 40)},
		{"read count MaxReads+1", batchHeader(1).ids().u(1).op(5).u(protocol.MaxReads + 1)},
		{"read count beyond input", batchHeader(1).ids().u(1).op(5).u(protocol.MaxReads)},
		{"body length 1<<40", batchHeader(1).ids().u(1).s("POST").s("/v1/x").u(1 << 40)},
		{"session length 1<<40", batchHeader(1).u(1 << 40)},
		{"signature length 1<<40", batchHeader(1).ids().u(1).s("POST").s("/v1/x").b(nil).u(1 << 40)},
		{"over MaxBatchBytes", append(append([]byte(nil), valid...), make([]byte, protocol.MaxBatchBytes)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := protocol.DecodeBatch(tt.in)
			if err == nil {
				t.Fatalf("DecodeBatch = %+v, nil; want an error", got)
			}
			if !errors.Is(err, protocol.ErrMalformed) {
				t.Errorf("DecodeBatch error = %v, want one wrapping ErrMalformed", err)
			}
			if got != nil {
				t.Errorf("DecodeBatch returned a batch with its error: %+v", got)
			}
		})
	}
}

func TestDecodeBatchTruncated(t *testing.T) {
	valid := protocol.EncodeBatch(testBatch())
	for i := 0; i < len(valid); i++ {
		if got, err := protocol.DecodeBatch(valid[:i]); err == nil {
			t.Fatalf("DecodeBatch(first %d of %d bytes) = %+v, nil; want an error", i, len(valid), got)
		}
	}
}

// allocBytes returns the bytes f allocates on the heap.
func allocBytes(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestDecodeHostileCountsAllocateLittle(t *testing.T) {
	// A few bytes claiming huge counts must not make the decoder allocate
	// for elements the input cannot hold.
	const limit = 16 << 10
	tests := []struct {
		name   string
		in     []byte
		decode func([]byte) error
	}{
		{"batch: bundle count 1<<40", batchHeader(1 << 40), decodeBatchErr},
		{"batch: MaxBundles bundles", batchHeader(protocol.MaxBundles), decodeBatchErr},
		{"batch: MaxOps ops", batchHeader(1).ids().u(protocol.MaxOps), decodeBatchErr},
		{"batch: MaxReads reads", batchHeader(1).ids().u(1).op(5).u(protocol.MaxReads), decodeBatchErr},
		{"batch: MaxBody body", batchHeader(1).ids().u(1).s("POST").s("/v1/x").u(protocol.MaxBody), decodeBatchErr},
		{"outcomes: count 1<<40", outcomesHeader(1 << 40), decodeOutcomesErr},
		{"outcomes: MaxBundles outcomes", outcomesHeader(protocol.MaxBundles), decodeOutcomesErr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			n := allocBytes(func() { err = tt.decode(tt.in) })
			if err == nil {
				t.Fatal("decode succeeded, want an error")
			}
			if n > limit {
				t.Errorf("decoding %d bytes allocated %d bytes, want at most %d", len(tt.in), n, limit)
			}
		})
	}
}

func decodeBatchErr(b []byte) error    { _, err := protocol.DecodeBatch(b); return err }
func decodeOutcomesErr(b []byte) error { _, err := protocol.DecodeOutcomes(b); return err }

func TestValidateTimeBounds(t *testing.T) {
	// Whatever Validate accepts must survive an encode/decode round trip.
	tests := []struct {
		time      int64
		wantValid bool
	}{
		{0, true},
		{1 << 62, true},
		{1<<62 + 1, false},
		{1<<63 - 1, false},
		{-1, false},
	}
	for _, tt := range tests {
		b := testBundle()
		b.Ops[1].Time = tt.time
		b.Ops[1].Expires = max(tt.time, b.Ops[1].Expires)
		err := b.Validate()
		if (err == nil) != tt.wantValid {
			t.Errorf("Validate with op time %d = %v, want valid %v", tt.time, err, tt.wantValid)
		}
		_, derr := protocol.DecodeBatch(protocol.EncodeBatch(&protocol.Batch{Bundles: []protocol.Bundle{b}}))
		if (derr == nil) != (err == nil) {
			t.Errorf("op time %d: Validate = %v but DecodeBatch(EncodeBatch) = %v", tt.time, err, derr)
		}
	}
}

// TestBundleSize checks Size against the encoder for bundles of every shape
// in testBatch and for growing sessions, so an L2 node that sums OpSize and
// ReadSize predicts exactly what L1's decoder will measure.
func TestBundleSize(t *testing.T) {
	check := func(name string, b protocol.Bundle) {
		t.Helper()
		one := protocol.EncodeBatch(&protocol.Batch{Bundles: []protocol.Bundle{b}})
		if got, want := b.Size(), len(one)-2; got != want { // tag and a one-byte count
			t.Errorf("%s: Size() = %d, encoded %d", name, got, want)
		}
	}
	for i, b := range testBatch().Bundles {
		check(fmt.Sprintf("testBatch[%d]", i), b)
	}
	specs := sessionSpecs("s-1")
	var reads []protocol.Read
	for n := 0; n < 300; n++ {
		specs = append(specs, opSpec{"POST", "/v1/x/" + strings.Repeat("p", n%40), bytes.Repeat([]byte{'b'}, n*37%500), int64(n) << (n % 50)})
		reads = append(reads, protocol.Read{Key: fmt.Sprintf("k%05d", n), Version: uint64(n) << (n % 60)})
		b := signedBundle("s-1", "alice", "node-1", aliceKey, nodeKey, specs, reads)
		b.Attempt = min(uint64(n)<<(n%15), protocol.MaxAttempt)
		check(fmt.Sprintf("%d ops, attempt %d", len(specs), b.Attempt), b)
		for _, r := range reads {
			if protocol.ReadSize(r) > protocol.MaxReadSize(r.Key) {
				t.Fatalf("ReadSize(%v) = %d > MaxReadSize %d", r, protocol.ReadSize(r), protocol.MaxReadSize(r.Key))
			}
		}
	}
}
