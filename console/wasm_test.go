package console

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/duet-bft/duet/console/internal/wasmsrc"
	"github.com/duet-bft/duet/service"
)

// TestVerifierFresh: the embedded WebAssembly verifier was built from the
// sources as they are (go generate ./console rebuilds it).
func TestVerifierFresh(t *testing.T) {
	want, err := wasmsrc.Digest()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("static/verify.wasm.src")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(got)) != want {
		t.Fatalf("static/verify.wasm.gz was built from other sources than these (%s, now %s): run go generate ./console", strings.TrimSpace(string(got)), want)
	}
}

// TestServeWasm: the verifier is served as application/wasm, gzipped to a
// client that takes gzip and plain to one that does not, under a CSP that
// lets the page compile it.
func TestServeWasm(t *testing.T) {
	h := Handler(&service.App{Name: "x", Version: "1", Registry: service.NewRegistry()})
	for _, gz := range []bool{true, false} {
		req := httptest.NewRequest(http.MethodGet, "/console/verify.wasm", nil)
		if gz {
			req.Header.Set("Accept-Encoding", "gzip, br")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/wasm" ||
			!strings.Contains(rec.Header().Get("Content-Security-Policy"), "'wasm-unsafe-eval'") {
			t.Fatalf("gzip %v: %d %v", gz, rec.Code, rec.Header())
		}
		var body io.Reader = rec.Body
		if gz {
			if rec.Header().Get("Content-Encoding") != "gzip" {
				t.Fatalf("not gzipped: %v", rec.Header())
			}
			zr, err := gzip.NewReader(rec.Body)
			if err != nil {
				t.Fatal(err)
			}
			body = zr
		}
		head := make([]byte, 4)
		if _, err := io.ReadFull(body, head); err != nil || string(head) != "\x00asm" {
			t.Fatalf("gzip %v: not WebAssembly: %q %v", gz, head, err)
		}
	}
}
