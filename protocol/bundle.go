package protocol

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"time"
)

// Op is one signed operation of a session as L1 sees it. Its seq is its
// index in Bundle.Ops and its prev hash is the OpHash of the op before it, so
// neither is carried: a bundle cannot express a gap or a reorder.
type Op struct {
	Method    string // HTTP method, upper case
	Path      string // URL path without query
	Body      []byte // exact request body bytes
	Signature []byte // actor's Ed25519 signature of OpBytes, 64 bytes
	Time      int64  // op timestamp in Unix milliseconds, assigned by L2
	Expires   int64  // expiry the actor signed, Unix milliseconds; Time <= Expires
	Result    Hash   // ResultHash of the result L2 claims
}

// Read is one entry of a session's read set: the version of a committed key
// the session observed. Version 0 means the key did not exist.
type Read struct {
	Key     string
	Version uint64
}

// Bundle is one finished session submitted by an L2 node.
type Bundle struct {
	Session string // session id
	Actor   string // the actor who signed every op
	Node    string // the L2 node (a registered actor) that executed it
	Ops     []Op
	Reads   []Read // sorted by key, no duplicates
	// Attempt counts the node's earlier submissions of this session. A
	// resubmission is then a new transaction, which no mempool answers
	// from its cache of transactions it has seen (committed or refused).
	// No verdict depends on it: a session is applied at most once
	// whatever the attempt. At most MaxAttempt.
	Attempt   uint64
	Signature []byte // L2 node's Ed25519 signature of SigningBytes, 64 bytes
}

// Batch is the content of one L1 transaction.
type Batch struct {
	Bundles []Bundle
}

// Limits of what L1 accepts. The decoder refuses anything over them, and an
// L2 node refuses the op that would take a session over them, so it never
// signs a receipt for an op L1 could not accept.
//
// MaxBatchBytes bounds one L1 transaction and MaxBundleBytes one session's
// bundle in it (its encoded size, Bundle.Size). Both are far below what
// CometBFT could carry: a block must be gossiped to every validator well
// within the consensus timeouts, or one large transaction stalls block
// production for everyone (docs/threat-model.md has the measurements).
const (
	MaxOps         = 256     // ops of one session, start and commit included
	MaxReads       = 4096    // entries of one session's read set
	MaxKeyLen      = 256     // bytes of one state key
	MaxBundles     = 4096    // bundles of one batch
	MaxBundleBytes = 1 << 20 // encoded bytes of one bundle
	MaxBatchBytes  = 2 << 20 // encoded bytes of one batch (one L1 transaction)
	MaxAttempt     = 1 << 14 // Bundle.Attempt

	maxOpTime = 1 << 62 // bound on Op.Time and Op.Expires, so they fit a varint decoders accept
)

// MaxOpAge is how far before a block's time L1 takes an op's time: a
// session must be committed within it. An L2 node keeps its sessions well
// inside it (buffer.Config.MaxSessionAge).
const MaxOpAge = 24 * time.Hour

// MinOpSize is the encoded size of the smallest op a bundle can hold
// (method PUT, path /, empty body), and MaxBatchSigs bounds the signatures
// in one batch: one per op and one per bundle. A node's memory of verified
// signatures is sized from it.
const (
	MinOpSize    = 1 + 3 + 1 + 1 + 1 + 1 + ed25519.SignatureSize + 1 + 1 + len(Hash{})
	MaxBatchSigs = MaxBatchBytes/MinOpSize + MaxBundles
)

// Version tags of the encodings (the first byte). Version 2 of the batch
// carries each op's signed expiry.
const (
	batchTag    = 0xD3
	outcomesTag = 0xD2
)

// ErrMalformed wraps every decoding error.
var ErrMalformed = errors.New("protocol: malformed")

// OpSigningBytes returns the bytes the actor signed for op seq of b, given
// the hash of the op before it.
func (b *Bundle) OpSigningBytes(seq int, prev Hash) []byte {
	op := &b.Ops[seq]
	return OpBytes(b.Session, uint64(seq), prev, op.Method, op.Path, op.Body, op.Expires)
}

// ChainedOp is one op of a bundle in its place in the op chain.
type ChainedOp struct {
	Seq    int
	Op     *Op
	Prev   Hash   // hash of the op before it; ZeroHash for seq 0
	Signed []byte // what its actor signed: OpBytes, which name Prev
	Hash   Hash   // OpHash(Signed): what the next op names
}

// Chain yields the bundle's ops in order, each in its place in the op
// chain. It is the one walk over a bundle's ops: signature checks,
// re-execution and the session record all take it.
func (b *Bundle) Chain() iter.Seq[ChainedOp] {
	return func(yield func(ChainedOp) bool) {
		prev := ZeroHash
		for i := range b.Ops {
			signed := b.OpSigningBytes(i, prev)
			c := ChainedOp{Seq: i, Op: &b.Ops[i], Prev: prev, Signed: signed, Hash: OpHash(signed)}
			if !yield(c) {
				return
			}
			prev = c.Hash
		}
	}
}

// VerifyOps checks every actor signature and thereby the op chain: op k is
// verified over bytes that name op k-1's hash. It returns the index of the
// first op that fails, or -1.
func (b *Bundle) VerifyOps(actorKey ed25519.PublicKey) int {
	for c := range b.Chain() {
		if !Verify(actorKey, c.Signed, c.Op.Signature) {
			return c.Seq
		}
	}
	return -1
}

// LastOpHash is the OpHash of the bundle's last op. It names the whole op
// chain: each op's signed bytes name the hash of the op before it.
func (b *Bundle) LastOpHash() Hash {
	last := ZeroHash
	for c := range b.Chain() {
		last = c.Hash
	}
	return last
}

// ResultsDigest commits to all op results of a session, in order.
func ResultsDigest(results []Hash) Hash {
	h := sha256.New()
	h.Write([]byte("duet/results/v1\n"))
	for i := range results {
		h.Write(results[i][:])
	}
	var out Hash
	h.Sum(out[:0])
	return out
}

// ClaimedResults returns the result hashes the L2 node claims.
func (b *Bundle) ClaimedResults() []Hash {
	out := make([]Hash, len(b.Ops))
	for i := range b.Ops {
		out[i] = b.Ops[i].Result
	}
	return out
}

// SigningBytes returns what the L2 node signs: a domain tag followed by the
// canonical encoding of every field but the signature.
func (b *Bundle) SigningBytes() []byte {
	out := []byte("duet/bundle/v2\n")
	return appendBundleBody(out, b)
}

// Sign sets b.Signature with the L2 node's key.
func (b *Bundle) Sign(key ed25519.PrivateKey) {
	b.Signature = ed25519.Sign(key, b.SigningBytes())
}

// VerifyNode checks the L2 node's signature.
func (b *Bundle) VerifyNode(nodeKey ed25519.PublicKey) bool {
	return Verify(nodeKey, b.SigningBytes(), b.Signature)
}

// Validate checks what a bundle must satisfy regardless of state: ids,
// lengths, limits, sorted reads. Decode calls it; builders may too.
func (b *Bundle) Validate() error {
	if !ValidID(b.Session) {
		return fmt.Errorf("session id %q: %w", b.Session, ErrBadID)
	}
	if !ValidID(b.Actor) {
		return fmt.Errorf("actor id %q: %w", b.Actor, ErrBadID)
	}
	if !ValidID(b.Node) {
		return fmt.Errorf("node id %q: %w", b.Node, ErrBadID)
	}
	if len(b.Ops) == 0 || len(b.Ops) > MaxOps {
		return fmt.Errorf("bundle has %d ops, want 1..%d", len(b.Ops), MaxOps)
	}
	for i := range b.Ops {
		op := &b.Ops[i]
		if !validMethod(op.Method) {
			return fmt.Errorf("op %d: bad method %q", i, op.Method)
		}
		if !ValidPath(op.Path) {
			return fmt.Errorf("op %d: bad path %q", i, op.Path)
		}
		if len(op.Body) > MaxBody {
			return fmt.Errorf("op %d: body of %d bytes exceeds %d", i, len(op.Body), MaxBody)
		}
		if len(op.Signature) != ed25519.SignatureSize {
			return fmt.Errorf("op %d: signature must be %d bytes", i, ed25519.SignatureSize)
		}
		if op.Time < 0 || op.Time > maxOpTime {
			return fmt.Errorf("op %d: time %d out of range 0..2^62", i, op.Time)
		}
		if op.Expires < op.Time || op.Expires > maxOpTime {
			return fmt.Errorf("op %d: expiry %d before its time %d or past 2^62", i, op.Expires, op.Time)
		}
	}
	if len(b.Reads) > MaxReads {
		return fmt.Errorf("bundle has %d reads, max %d", len(b.Reads), MaxReads)
	}
	for i := range b.Reads {
		if len(b.Reads[i].Key) == 0 || len(b.Reads[i].Key) > MaxKeyLen {
			return fmt.Errorf("read %d: key length %d", i, len(b.Reads[i].Key))
		}
		if i > 0 && b.Reads[i-1].Key >= b.Reads[i].Key {
			return fmt.Errorf("reads not sorted and unique at %d", i)
		}
	}
	if len(b.Signature) != ed25519.SignatureSize {
		return fmt.Errorf("node signature must be %d bytes", ed25519.SignatureSize)
	}
	if b.Attempt > MaxAttempt {
		return fmt.Errorf("attempt %d exceeds %d", b.Attempt, MaxAttempt)
	}
	if n := b.Size(); n > MaxBundleBytes {
		return fmt.Errorf("bundle of %d bytes exceeds %d", n, MaxBundleBytes)
	}
	return nil
}

// Size is the encoded size of b in a batch: EncodeBatch spends exactly
// this many bytes on it.
func (b *Bundle) Size() int {
	opBytes, readBytes := 0, 0
	for i := range b.Ops {
		opBytes += OpSize(&b.Ops[i])
	}
	for i := range b.Reads {
		readBytes += ReadSize(b.Reads[i])
	}
	return BundleSize(b.Session, b.Actor, b.Node, len(b.Ops), opBytes, len(b.Reads), readBytes, b.Attempt) +
		sizedLen(len(b.Signature)) - sizedLen(ed25519.SignatureSize)
}

// BundleSize is the encoded size of a bundle of session, actor and node
// (with a 64-byte node signature) holding nops ops of opBytes bytes in all
// (each its OpSize) and nreads reads of readBytes (each its ReadSize), at
// attempt. An L2 node keeps the sums as a session grows.
func BundleSize(session, actor, node string, nops, opBytes, nreads, readBytes int, attempt uint64) int {
	return sizedLen(len(session)) + sizedLen(len(actor)) + sizedLen(len(node)) +
		uvarintLen(uint64(nops)) + opBytes + uvarintLen(uint64(nreads)) + readBytes + uvarintLen(attempt) +
		sizedLen(ed25519.SignatureSize)
}

// OpSize is the encoded size of op inside a bundle.
func OpSize(op *Op) int {
	return sizedLen(len(op.Method)) + sizedLen(len(op.Path)) + sizedLen(len(op.Body)) + sizedLen(len(op.Signature)) +
		uvarintLen(uint64(op.Time)) + uvarintLen(uint64(op.Expires)) + len(op.Result)
}

// ReadSize is the encoded size of r inside a bundle.
func ReadSize(r Read) int { return sizedLen(len(r.Key)) + uvarintLen(r.Version) }

// MaxReadSize bounds ReadSize of a read of key at any version.
func MaxReadSize(key string) int { return sizedLen(len(key)) + binary.MaxVarintLen64 }

// sizedLen is the size of a length-prefixed string or byte slice of n bytes.
func sizedLen(n int) int { return uvarintLen(uint64(n)) + n }

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

func validMethod(m string) bool {
	switch m {
	case "POST", "PUT", "PATCH", "DELETE":
		return true
	}
	return false
}

// ValidPath reports whether p is an absolute URL path of printable ASCII
// without query or fragment, at most MaxPathLen bytes.
func ValidPath(p string) bool {
	if len(p) == 0 || len(p) > MaxPathLen || p[0] != '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c <= ' ' || c > '~' || c == '?' || c == '#' {
			return false
		}
	}
	return true
}

// EncodeBatch returns the canonical encoding of b.
func EncodeBatch(b *Batch) []byte {
	out := []byte{batchTag}
	out = binary.AppendUvarint(out, uint64(len(b.Bundles)))
	for i := range b.Bundles {
		out = appendBundleBody(out, &b.Bundles[i])
		out = appendBytes(out, b.Bundles[i].Signature)
	}
	return out
}

func appendBundleBody(out []byte, b *Bundle) []byte {
	out = appendString(out, b.Session)
	out = appendString(out, b.Actor)
	out = appendString(out, b.Node)
	out = binary.AppendUvarint(out, uint64(len(b.Ops)))
	for i := range b.Ops {
		op := &b.Ops[i]
		out = appendString(out, op.Method)
		out = appendString(out, op.Path)
		out = appendBytes(out, op.Body)
		out = appendBytes(out, op.Signature)
		out = binary.AppendUvarint(out, uint64(op.Time))
		out = binary.AppendUvarint(out, uint64(op.Expires))
		out = append(out, op.Result[:]...)
	}
	out = binary.AppendUvarint(out, uint64(len(b.Reads)))
	for i := range b.Reads {
		out = appendString(out, b.Reads[i].Key)
		out = binary.AppendUvarint(out, b.Reads[i].Version)
	}
	return binary.AppendUvarint(out, b.Attempt)
}

func appendString(out []byte, s string) []byte {
	out = binary.AppendUvarint(out, uint64(len(s)))
	return append(out, s...)
}

func appendBytes(out []byte, b []byte) []byte {
	out = binary.AppendUvarint(out, uint64(len(b)))
	return append(out, b...)
}

// DecodeBatch parses a transaction. It rejects anything that is not the
// canonical encoding of a batch whose bundles all pass Validate.
func DecodeBatch(data []byte) (*Batch, error) {
	if len(data) > MaxBatchBytes {
		return nil, fmt.Errorf("%w: batch of %d bytes exceeds %d", ErrMalformed, len(data), MaxBatchBytes)
	}
	d := decoder{buf: data}
	if d.byte() != batchTag {
		return nil, fmt.Errorf("%w: not a duet batch (version tag)", ErrMalformed)
	}
	n := d.count(MaxBundles)
	b := &Batch{Bundles: make([]Bundle, 0, n)}
	for i := 0; i < n && d.err == nil; i++ {
		var bu Bundle
		bu.Session = d.string(MaxIDLen)
		bu.Actor = d.string(MaxIDLen)
		bu.Node = d.string(MaxIDLen)
		nops := d.count(MaxOps)
		bu.Ops = make([]Op, nops)
		for j := 0; j < nops && d.err == nil; j++ {
			op := &bu.Ops[j]
			op.Method = d.string(8)
			op.Path = d.string(MaxPathLen)
			op.Body = d.bytes(MaxBody)
			op.Signature = d.bytes(ed25519.SignatureSize)
			t := d.uvarint()
			if t > maxOpTime {
				d.fail("op time out of range")
			}
			op.Time = int64(t)
			e := d.uvarint()
			if e > maxOpTime {
				d.fail("op expiry out of range")
			}
			op.Expires = int64(e)
			copy(op.Result[:], d.raw(32))
		}
		nreads := d.count(MaxReads)
		bu.Reads = make([]Read, nreads)
		for j := 0; j < nreads && d.err == nil; j++ {
			bu.Reads[j].Key = d.string(MaxKeyLen)
			bu.Reads[j].Version = d.uvarint()
		}
		bu.Attempt = d.uvarint()
		bu.Signature = d.bytes(ed25519.SignatureSize)
		if d.err == nil {
			if err := bu.Validate(); err != nil {
				return nil, fmt.Errorf("%w: bundle %d: %v", ErrMalformed, i, err)
			}
		}
		b.Bundles = append(b.Bundles, bu)
	}
	if d.err != nil {
		return nil, d.err
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: empty batch", ErrMalformed)
	}
	if len(d.buf) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(d.buf))
	}
	return b, nil
}

// decoder reads canonical fields; the first error sticks and every later
// read returns zero values.
type decoder struct {
	buf []byte
	err error
}

func (d *decoder) fail(msg string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrMalformed, msg)
	}
	d.buf = nil
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.buf) < 1 {
		d.fail("truncated")
		return 0
	}
	c := d.buf[0]
	d.buf = d.buf[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	// Canonical: the minimal encoding only.
	if n != len(binary.AppendUvarint(nil, v)) {
		d.fail("non-minimal varint")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

// count reads an element count or a length. Every element takes at least
// one byte, so a count beyond the remaining input is rejected before anyone
// allocates for it.
func (d *decoder) count(max int) int {
	v := d.uvarint()
	if v > uint64(max) {
		d.fail(fmt.Sprintf("count %d exceeds %d", v, max))
		return 0
	}
	if v > uint64(len(d.buf)) {
		d.fail("truncated")
		return 0
	}
	return int(v)
}

func (d *decoder) raw(n int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.buf) < n {
		d.fail("truncated")
		return nil
	}
	out := d.buf[:n:n]
	d.buf = d.buf[n:]
	return out
}

func (d *decoder) bytes(max int) []byte {
	n := d.count(max)
	if d.err != nil {
		return nil
	}
	b := d.raw(n)
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

func (d *decoder) string(max int) string {
	return string(d.bytes(max))
}
