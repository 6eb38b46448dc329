package protocol_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"strings"
	"testing"

	"github.com/duet-bft/duet/protocol"
)

// testKey returns a fixed Ed25519 key: the seed is 32 copies of b.
func testKey(b byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize))
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// seqHash returns the hash whose bytes are 0, 1, ..., 31.
func seqHash() protocol.Hash {
	var h protocol.Hash
	for i := range h {
		h[i] = byte(i)
	}
	return h
}

func TestOpBytesGolden(t *testing.T) {
	const zeros = "0000000000000000000000000000000000000000000000000000000000000000"
	// Body digests computed independently (sha256sum).
	const (
		emptySHA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" // ""
		objSHA   = "015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862" // {"a":1}
	)
	tests := []struct {
		name    string
		session string
		seq     uint64
		prev    protocol.Hash
		method  string
		path    string
		body    []byte
		expires int64
		want    string
	}{
		{
			name: "session start", session: "s-1", seq: 0, prev: protocol.ZeroHash,
			method: "POST", path: "/v1/sessions", body: nil, expires: 1_700_000_060_000,
			want: "duet/op/v2\ns-1\n0\n" + zeros + "\nPOST /v1/sessions\n" + emptySHA + "\n1700000060000",
		},
		{
			name: "empty non-nil body", session: "s-1", seq: 0, prev: protocol.ZeroHash,
			method: "POST", path: "/v1/sessions", body: []byte{}, expires: 1_700_000_060_000,
			want: "duet/op/v2\ns-1\n0\n" + zeros + "\nPOST /v1/sessions\n" + emptySHA + "\n1700000060000",
		},
		{
			name: "later op", session: "Sess_2.x", seq: 3, prev: seqHash(),
			method: "POST", path: "/v1/packages/p1/scan", body: []byte(`{"a":1}`),
			want: "duet/op/v2\nSess_2.x\n3\n000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n" +
				"POST /v1/packages/p1/scan\n" + objSHA + "\n0",
		},
		{
			name: "max seq", session: "s", seq: 18446744073709551615, prev: seqHash(),
			method: "DELETE", path: "/v1/sessions/s", body: nil, expires: 1 << 62,
			want: "duet/op/v2\ns\n18446744073709551615\n000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n" +
				"DELETE /v1/sessions/s\n" + emptySHA + "\n4611686018427387904",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(protocol.OpBytes(tt.session, tt.seq, tt.prev, tt.method, tt.path, tt.body, tt.expires))
			if got != tt.want {
				t.Errorf("OpBytes:\ngot  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestOpHash(t *testing.T) {
	start := protocol.OpBytes("s-1", 0, protocol.ZeroHash, "POST", "/v1/sessions", nil, 1_700_000_060_000)
	// sha256sum of the session-start bytes of TestOpBytesGolden, computed independently.
	const want = "be62eb3d47c181d2ce52c7c135b119afa6d9d0e5394700563782c2d0797f56fd"
	if got := protocol.OpHash(start).String(); got != want {
		t.Errorf("OpHash(start) = %s, want %s", got, want)
	}
	if got, want := protocol.OpHash(start), protocol.Hash(sha256.Sum256(start)); got != want {
		t.Errorf("OpHash = %s, want sha256 %s", got, want)
	}

	// Chain three ops: each names the hash of the one before.
	prev := protocol.ZeroHash
	var hashes []protocol.Hash
	for seq, path := range []string{"/v1/sessions", "/v1/widgets", "/v1/sessions/s-1/commit"} {
		b := protocol.OpBytes("s-1", uint64(seq), prev, "POST", path, nil, 1_700_000_060_000)
		lines := strings.Split(string(b), "\n")
		if got, want := lines[3], prev.String(); got != want {
			t.Errorf("op %d prev line = %q, want %q", seq, got, want)
		}
		prev = protocol.OpHash(b)
		hashes = append(hashes, prev)
	}
	for i := range hashes {
		for j := i + 1; j < len(hashes); j++ {
			if hashes[i] == hashes[j] {
				t.Errorf("op hashes %d and %d are equal: %s", i, j, hashes[i])
			}
		}
	}

	// The same op under a different prev hash has a different hash.
	a := protocol.OpHash(protocol.OpBytes("s-1", 1, hashes[0], "POST", "/v1/widgets", nil, 1_700_000_060_000))
	b := protocol.OpHash(protocol.OpBytes("s-1", 1, seqHash(), "POST", "/v1/widgets", nil, 1_700_000_060_000))
	if a == b {
		t.Errorf("op hash does not depend on prev hash: got %s twice", a)
	}
}

func TestParseHash(t *testing.T) {
	h := seqHash()
	tests := []struct {
		in      string
		want    protocol.Hash
		wantErr bool
	}{
		{in: h.String(), want: h},
		{in: strings.ToUpper(h.String()), want: h},
		{in: strings.Repeat("0", 64), want: protocol.ZeroHash},
		{in: "", wantErr: true},
		{in: h.String()[:62], wantErr: true},
		{in: h.String() + "00", wantErr: true},
		{in: strings.Repeat("g", 64), wantErr: true},
		{in: strings.Repeat("0", 63) + " ", wantErr: true},
	}
	for _, tt := range tests {
		got, err := protocol.ParseHash(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseHash(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if err == nil && got != tt.want {
			t.Errorf("ParseHash(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestValidID(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"a", true},
		{"Az09._-", true},
		{strings.Repeat("x", protocol.MaxIDLen), true},
		{strings.Repeat("x", protocol.MaxIDLen+1), false},
		{"", false},
		{"a b", false},
		{"a/b", false},
		{"a\nb", false},
		{"é", false},
		{"a:b", false},
	}
	for _, tt := range tests {
		if got := protocol.ValidID(tt.in); got != tt.want {
			t.Errorf("ValidID(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestValidPath(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"/", true},
		{"/v1/sessions/s-1/commit", true},
		{"/" + strings.Repeat("x", protocol.MaxPathLen-1), true},
		{"/" + strings.Repeat("x", protocol.MaxPathLen), false},
		{"", false},
		{"v1/sessions", false},
		{"/v1/a?b=c", false},
		{"/v1/a#b", false},
		{"/v1/a b", false},
		{"/v1/a\nb", false},
		{"/v1/\x7f", false},
		{"/v1/é", false},
	}
	for _, tt := range tests {
		if got := protocol.ValidPath(tt.in); got != tt.want {
			t.Errorf("ValidPath(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestResultHash(t *testing.T) {
	// sha256sum of "duet/result/v1\n200\n{\"ok\":true}", computed independently.
	const want = "d8241fa9419b0039d33d5b3af2412aa739d36fefb1e7707196a576f10575de6c"
	if got := protocol.ResultHash(200, []byte(`{"ok":true}`)).String(); got != want {
		t.Errorf("ResultHash = %s, want %s", got, want)
	}
	base := protocol.ResultHash(200, []byte(`{}`))
	if got := protocol.ResultHash(201, []byte(`{}`)); got == base {
		t.Errorf("ResultHash ignores the status: got %s for 200 and 201", got)
	}
	if got := protocol.ResultHash(200, []byte(`{ }`)); got == base {
		t.Errorf("ResultHash ignores the body: got %s for two bodies", got)
	}
	// Status and body are separated: 20 + "0{}" must not collide with 200 + "{}".
	if got := protocol.ResultHash(20, []byte(`0{}`)); got == base {
		t.Errorf("ResultHash(20, 0{}) = ResultHash(200, {}) = %s", got)
	}
}

func TestResultsDigest(t *testing.T) {
	// sha256sum of "duet/results/v1\n", computed independently.
	const empty = "e85191a14657c3f571f97f26f5a803431ea8484ebb0605a8b3471139538f5b35"
	if got := protocol.ResultsDigest(nil).String(); got != empty {
		t.Errorf("ResultsDigest(nil) = %s, want %s", got, empty)
	}
	a, b := protocol.ResultHash(200, nil), protocol.ResultHash(404, nil)
	if protocol.ResultsDigest([]protocol.Hash{a, b}) == protocol.ResultsDigest([]protocol.Hash{b, a}) {
		t.Error("ResultsDigest does not depend on order")
	}
	bu := protocol.Bundle{Ops: []protocol.Op{{Result: a}, {Result: b}}}
	if got, want := protocol.ResultsDigest(bu.ClaimedResults()), protocol.ResultsDigest([]protocol.Hash{a, b}); got != want {
		t.Errorf("ResultsDigest(ClaimedResults) = %s, want %s", got, want)
	}
}

func TestVerify(t *testing.T) {
	k := testKey(1)
	msg := []byte("hello")
	sig := ed25519.Sign(k, msg)
	tests := []struct {
		name string
		pub  ed25519.PublicKey
		msg  []byte
		sig  []byte
		want bool
	}{
		{"valid", pub(k), msg, sig, true},
		{"other key", pub(testKey(2)), msg, sig, false},
		{"other message", pub(k), []byte("hellp"), sig, false},
		{"short key", pub(k)[:31], msg, sig, false},
		{"nil key", nil, msg, sig, false},
		{"short signature", pub(k), msg, sig[:63], false},
		{"long signature", pub(k), msg, append(append([]byte(nil), sig...), 0), false},
		{"nil signature", pub(k), msg, nil, false},
	}
	for _, tt := range tests {
		if got := protocol.Verify(tt.pub, tt.msg, tt.sig); got != tt.want {
			t.Errorf("%s: Verify = %v, want %v", tt.name, got, tt.want)
		}
	}
}
