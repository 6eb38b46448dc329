package proof_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/duet-bft/duet/proof"
)

// The fixtures are real: a proof of the paper's workflow from a local
// network of 4 and of 16 validators, with its genesis and a receipt
// (go run ./proof/internal/mkfixture writes them).
var fixtures = []string{"4", "16"}

type fixture struct {
	trust   proof.Trust
	proof   []byte
	receipt proof.Receipt
}

func load(t testing.TB, name string) fixture {
	t.Helper()
	dir := filepath.Join("testdata", name)
	read := func(f string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	trust, err := proof.TrustGenesis(read("genesis.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rc proof.Receipt
	if err := json.Unmarshal(read("receipt.json"), &rc); err != nil {
		t.Fatal(err)
	}
	return fixture{trust, read("proof.json"), rc}
}

// TestFixtures: each proof verifies against its own genesis and not the
// other's, and its receipt is a promise kept.
func TestFixtures(t *testing.T) {
	for i, name := range fixtures {
		f := load(t, name)
		r, err := proof.Verify(f.trust, f.proof)
		if err != nil {
			t.Fatalf("%s validators: %v", name, err)
		}
		if !strings.HasSuffix(r.Signed, fmt.Sprintf("/%s0", name)) || r.Outcome != "OK" || !r.Answers || r.Receipts != r.Ops {
			t.Errorf("%s validators: %+v", name, r)
		}
		t.Logf("%s validators: %d bytes, %s", name, len(f.proof), r.Summary())
		other := load(t, fixtures[1-i])
		if _, err := proof.Verify(other.trust, f.proof); err == nil {
			t.Errorf("the %s-validator proof verifies against the other genesis", name)
		}
		_, p, err := proof.VerifyReceipt(f.trust, f.proof, f.receipt)
		if err != nil || !p.Kept {
			t.Errorf("%s validators: the receipt: %+v %v", name, p, err)
		}
	}
}

// TestOneEncoding: a proof has one document; the same content written
// otherwise (null for an empty list, other spacing, upper-case hex) is
// refused, so a proof's hash names its content.
func TestOneEncoding(t *testing.T) {
	f := load(t, "4")
	for _, edit := range [][2]string{
		{`"aunts": []`, `"aunts": null`},
		{`"format": "duet/proof/v1"`, `"format":"duet/proof/v1"`},
		{`"results": "`, `"results":  "`},
	} {
		doc := strings.Replace(string(f.proof), edit[0], edit[1], 1)
		if doc == string(f.proof) {
			t.Fatalf("%q is not in the fixture", edit[0])
		}
		if r, err := proof.Verify(f.trust, []byte(doc)); err == nil || r.Failed != "format" {
			t.Errorf("%q for %q: %+v %v", edit[1], edit[0], r, err)
		}
	}
	p, _ := proof.Decode(f.proof)
	if doc, _ := proof.Encode(p); string(doc) != string(f.proof) {
		t.Error("Encode(Decode(doc)) != doc")
	}
}

// BenchmarkVerify measures the Go verifier on the fixtures.
func BenchmarkVerify(b *testing.B) {
	for _, name := range fixtures {
		f := load(b, name)
		b.Run(name+"-validators", func(b *testing.B) {
			b.SetBytes(int64(len(f.proof)))
			for b.Loop() {
				if _, err := proof.Verify(f.trust, f.proof); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzVerify: no input makes the verifier panic, and what it accepts is
// the canonical encoding of a proof whose report says what it holds.
func FuzzVerify(f *testing.F) {
	fx := load(f, "4")
	f.Add(fx.proof)
	f.Add([]byte(`{"format":"duet/proof/v1"}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		r, err := proof.Verify(fx.trust, doc)
		if err != nil {
			if r == nil || r.Valid || r.Failed == "" {
				t.Fatalf("a failure without its check: %+v", r)
			}
			return
		}
		p, err := proof.Decode(doc)
		if err != nil {
			t.Fatal(err)
		}
		if r.Session != p.Session || r.Height != p.Height || r.ProofHash != proof.Hash(doc) {
			t.Fatalf("report %+v of proof of %s at %d", r, p.Session, p.Height)
		}
	})
}

// FuzzCertificate: what ParseCertificate accepts is exactly what Encode
// gives.
func FuzzCertificate(f *testing.F) {
	f.Add([]byte("duet-cert/v1\nchain duet-local\nkey pkg/PKG-1\nsession operator-1/wf-1\nheight 42\noutcome OK " +
		strings.Repeat("ab", 32) + "\nproof " + strings.Repeat("cd", 32) + "\n"))
	f.Add([]byte("duet-cert/v1\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := proof.ParseCertificate(raw)
		if err != nil {
			return
		}
		if string(c.Encode()) != string(raw) {
			t.Fatalf("parsed %q, encodes as %q", raw, c.Encode())
		}
	})
}
