package protocol

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// Hash is a SHA-256 digest.
type Hash [32]byte

// String returns the lowercase hex form of h.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// MarshalText encodes h as hex (for JSON).
func (h Hash) MarshalText() ([]byte, error) { return hex.AppendEncode(nil, h[:]), nil }

// UnmarshalText decodes 64 hex digits.
func (h *Hash) UnmarshalText(b []byte) error {
	p, err := ParseHash(string(b))
	*h = p
	return err
}

// ZeroHash is the prev-op hash of seq 0.
var ZeroHash Hash

// ParseHash parses 64 lowercase or uppercase hex digits.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 64 {
		return h, fmt.Errorf("protocol: hash must be 64 hex digits, got %d characters", len(s))
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("protocol: bad hash: %w", err)
	}
	return h, nil
}

// Limits on what a session id, actor id and path may be. They bound every
// decoder and every signature check.
const (
	MaxIDLen   = 64
	MaxPathLen = 512
	MaxBody    = 64 << 10 // bytes of one request body
)

var (
	ErrBadID     = errors.New("protocol: id must be 1-64 characters of A-Za-z0-9._-")
	ErrSignature = errors.New("protocol: bad signature")
)

// ValidID reports whether s is a valid session, actor or object id:
// 1-64 characters of A-Za-z0-9._-
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > MaxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// OpVersion is the version tag that starts the bytes of every signed op.
const OpVersion = "duet/op/v2"

// OpBytes returns the bytes an actor signs for operation seq of a session:
//
//	duet/op/v2\n<session_id>\n<seq>\n<prev_op_hash hex>\n<METHOD> <path>\n<hex sha256 of body>\n<expires>
//
// expires is a Unix time in milliseconds, in decimal: L2 executes the op only
// before it, and L1 applies a session only in a block whose time is at most
// the expiry of the session's last op (see Bundle). An op that failed or went
// unanswered can therefore never be applied after its expiry.
func OpBytes(session string, seq uint64, prev Hash, method, path string, body []byte, expires int64) []byte {
	bh := sha256.Sum256(body)
	b := make([]byte, 0, len(OpVersion)+1+len(session)+1+20+1+64+1+len(method)+1+len(path)+1+64+1+20)
	b = append(b, OpVersion...)
	b = append(b, '\n')
	b = append(b, session...)
	b = append(b, '\n')
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, '\n')
	b = hex.AppendEncode(b, prev[:])
	b = append(b, '\n')
	b = append(b, method...)
	b = append(b, ' ')
	b = append(b, path...)
	b = append(b, '\n')
	b = hex.AppendEncode(b, bh[:])
	b = append(b, '\n')
	b = strconv.AppendInt(b, expires, 10)
	return b
}

// OpHash is the SHA-256 of OpBytes; op seq k+1 names it as its prev hash.
func OpHash(signed []byte) Hash { return sha256.Sum256(signed) }

// ResultHash commits to the result of an operation: its HTTP status and the
// exact response body bytes.
func ResultHash(status int, body []byte) Hash {
	h := sha256.New()
	h.Write([]byte("duet/result/v1\n"))
	h.Write(strconv.AppendInt(nil, int64(status), 10))
	h.Write([]byte{'\n'})
	h.Write(body)
	var out Hash
	h.Sum(out[:0])
	return out
}

// Verify checks an Ed25519 signature made by pub over msg, with the ZIP-215
// validation rules (as CometBFT does): they are fully specified, so every
// node agrees on every signature, even a crafted one, and batch
// verification (VerifyBatch) always agrees with one-by-one verification.
func Verify(pub ed25519.PublicKey, msg, sig []byte) bool {
	return len(pub) == ed25519.PublicKeySize && len(sig) == ed25519.SignatureSize &&
		voi.VerifyWithOptions(voi.PublicKey(pub), msg, sig, zip215)
}

var zip215 = &voi.Options{Verify: voi.VerifyOptionsZIP_215}

// SigItem is one signature to check.
type SigItem struct {
	Key ed25519.PublicKey
	Msg []byte
	Sig []byte
}

// VerifyBatch checks many signatures at once, about twice as fast as one by
// one; ok[i] tells whether item i verified.
func VerifyBatch(items []SigItem) (ok []bool) {
	ok = make([]bool, len(items))
	bv := voi.NewBatchVerifierWithCapacity(len(items))
	idx := make([]int, 0, len(items))
	for i, it := range items {
		if len(it.Key) != ed25519.PublicKeySize || len(it.Sig) != ed25519.SignatureSize {
			continue
		}
		bv.AddWithOptions(voi.PublicKey(it.Key), it.Msg, it.Sig, zip215)
		idx = append(idx, i)
	}
	if len(idx) == 0 {
		return ok
	}
	_, valid := bv.Verify(rand.Reader)
	for j, i := range idx {
		ok[i] = valid[j]
	}
	return ok
}
