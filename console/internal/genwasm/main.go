// Command genwasm builds the console's WebAssembly verifier (package
// console/verifier) into static/verify.wasm.gz, copies the Go toolchain's
// wasm_exec.js beside it, and records the sources' digest in
// static/verify.wasm.src. Run it with `go generate ./console`.
package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/duet-bft/duet/console/internal/wasmsrc"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "genwasm:", err)
		os.Exit(1)
	}
}

func run() error {
	tmp, err := os.MkdirTemp("", "genwasm")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "verify.wasm")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, wasmsrc.Package)
	build.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build: %w", err)
	}
	raw, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression) // no name, no time: the same bytes for the same binary
	zw.Write(raw)
	if err := zw.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join("static", "verify.wasm.gz"), gz.Bytes(), 0o644); err != nil {
		return err
	}
	root, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		return err
	}
	js, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(root)), "lib", "wasm", "wasm_exec.js"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join("static", "wasm_exec.js"), js, 0o644); err != nil {
		return err
	}
	digest, err := wasmsrc.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("verify.wasm: %d bytes, %d gzipped; sources %s\n", len(raw), gz.Len(), digest)
	return os.WriteFile(filepath.Join("static", "verify.wasm.src"), []byte(digest+"\n"), 0o644)
}
