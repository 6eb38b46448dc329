// Package wasmsrc computes the digest of what the console's WebAssembly
// verifier is built from: the Go files of every package of this module it
// compiles (for js/wasm), and the version of every other module it
// compiles. The build records it beside the binary, and a test fails if
// the sources changed since (go generate ./console rebuilds it). A new
// dependency of the rest of duet does not change it.
package wasmsrc

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// Package is the verifier's main package.
const Package = "github.com/duet-bft/duet/console/verifier"

// Digest returns the digest of the verifier's sources, run from any
// directory of the module.
func Digest() (string, error) {
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Dir,GoFiles,Module", Package)
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go list: %w", err)
	}
	type pkg struct {
		ImportPath string
		Dir        string
		GoFiles    []string
		Module     *struct{ Path, Dir, Version string }
	}
	h := sha256.New()
	var root string
	dec := json.NewDecoder(strings.NewReader(string(out)))
	var files []string
	modules := map[string]bool{}
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			return "", err
		}
		if p.Module == nil {
			continue // the standard library: the Go version's
		}
		if p.Module.Path != "github.com/duet-bft/duet" {
			modules[p.Module.Path+"@"+p.Module.Version] = true
			continue
		}
		root = p.Module.Dir
		for _, f := range p.GoFiles {
			files = append(files, filepath.Join(p.Dir, f))
		}
	}
	if root == "" {
		return "", fmt.Errorf("no package of this module in %s", Package)
	}
	mods := make([]string, 0, len(modules))
	for m := range modules {
		mods = append(mods, m)
	}
	sort.Strings(mods)
	for _, m := range mods {
		fmt.Fprintf(h, "%s\n", m)
	}
	sort.Strings(files)
	for _, f := range files {
		rel, _ := filepath.Rel(root, f)
		fmt.Fprintf(h, "%s\n", filepath.ToSlash(rel))
		fh, err := os.Open(f)
		if err != nil {
			return "", err
		}
		_, err = io.Copy(h, fh)
		fh.Close()
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
