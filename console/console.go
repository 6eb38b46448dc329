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
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"

	"github.com/duet-bft/duet/service"
)

//go:embed static
var static embed.FS

// Policy is the Content-Security-Policy of every console response: the
// page may load and connect to nothing but the node that served it.
const Policy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
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
