// Package console is duet's web console: the pages every L2 node serves at
// "/" for the people duet is for (operators, suppliers, auditors) and an
// application's own pages, mounted into it. Everything is embedded in the
// binary and served by the node itself: no request leaves it, and a
// Content-Security-Policy tells the browser so. The generic parts (sign-in,
// signing ops, sessions and their status, evidence, the network panel) are
// the framework's (static/); an app adds pages with service.App.Console.
//
// Private keys never reach the server: the browser imports an actor's seed
// into WebCrypto as a non-extractable Ed25519 key and signs every op
// itself. docs/console.md describes the pages and the test ids.
package console

import (
	"bytes"
	"compress/gzip"
	"embed"
	"io"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/duet-bft/duet/service"
)

//go:embed static
var static embed.FS

//go:generate go run ./internal/genwasm

// Policy is the Content-Security-Policy of every console response: the
// page may load and connect to nothing but the node that served it. It may
// compile WebAssembly ('wasm-unsafe-eval', which allows no JavaScript
// eval): the proof verifier, served by the node like every other file.
const Policy = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the console of app: GET / is the page, /console/... the
// framework's files and /console/app/... the app's (service.App.Console).
func Handler(app *service.App) http.Handler {
	files, _ := fs.Sub(static, "static")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/console/")
		src := files
		switch {
		case r.URL.Path == "/":
			name = "index.html"
		case strings.HasPrefix(name, "app/"):
			if app.Console == nil {
				http.NotFound(w, r)
				return
			}
			name, src = strings.TrimPrefix(name, "app/"), app.Console
		}
		name = path.Clean(name)
		if name == "." || strings.HasPrefix(name, "..") || !fs.ValidPath(name) {
			http.NotFound(w, r)
			return
		}
		if src == files && name == "verify.wasm" {
			serveWasm(w, r)
			return
		}
		data, err := fs.ReadFile(src, name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", contentType(name))
		h.Set("Content-Security-Policy", Policy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		w.Write(data)
	})
}

// serveWasm serves the proof verifier (package console/verifier, built by
// go generate): gzip-compressed as embedded, to every browser (they all
// accept it), or decompressed for a client that does not. Its ETag is its
// sources' digest, so a browser downloads it again only when it changed.
func serveWasm(w http.ResponseWriter, r *http.Request) {
	gz, err := static.ReadFile("static/verify.wasm.gz")
	src, err2 := static.ReadFile("static/verify.wasm.src")
	if err != nil || err2 != nil {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/wasm")
	h.Set("Content-Security-Policy", Policy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", `"`+strings.TrimSpace(string(src))+`"`)
	h.Set("Vary", "Accept-Encoding")
	if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		zr, err := gzip.NewReader(bytes.NewReader(gz))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		raw, err := io.ReadAll(zr)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		http.ServeContent(w, r, "verify.wasm", time.Time{}, bytes.NewReader(raw))
		return
	}
	h.Set("Content-Encoding", "gzip")
	http.ServeContent(w, r, "verify.wasm", time.Time{}, bytes.NewReader(gz))
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	case ".json":
		return "application/json"
	}
	return "application/octet-stream"
}
