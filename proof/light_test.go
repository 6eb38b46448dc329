package proof

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

//go:generate sh -c "d=$(go list -m -f '{{.Dir}}' github.com/cometbft/cometbft)/light && for f in verifier.go errors.go trust_options.go; do cp $d/$f internal/light/$f && chmod 644 internal/light/$f; done"

// TestLightCopy: the WebAssembly build's copies of CometBFT's light
// verifier are byte for byte the files of the CometBFT that go.mod names.
func TestLightCopy(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/cometbft/cometbft").Output()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "light")
	for _, f := range []string{"verifier.go", "errors.go", "trust_options.go"} {
		want, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join("internal", "light", f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("internal/light/%s differs from CometBFT's light/%s: run go generate ./proof", f, f)
		}
	}
}
