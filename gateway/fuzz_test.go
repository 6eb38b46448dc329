package gateway_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/duet-bft/duet/gateway"
	"github.com/duet-bft/duet/service"
)

// fuzzStatuses are the statuses the HTTP contract allows.
var fuzzStatuses = map[int]bool{200: true, 201: true, 202: true, 400: true, 401: true, 403: true, 404: true,
	405: true, 409: true, 413: true, 429: true, 500: true, 503: true}

// FuzzGateway sends arbitrary requests to the handler: it never panics,
// always answers JSON with a status of the contract, and never changes
// L1: its committed state stays as it was, and nothing is submitted.
func FuzzGateway(f *testing.F) {
	e := newEnv(f, 20*time.Millisecond)
	committed := e.snapshot()
	start := (&sess{id: "fz-1", who: operator1}).request(http.MethodPost, service.PathSessions, `{"package_id":"PKG-1"}`)
	hdr := func(r *http.Request, h string) string { return r.Header.Get(h) }
	sig := hdr(start, gateway.HeaderSignature)
	exp := start.Header.Get(gateway.HeaderExpires)
	seeds := []struct {
		method, target, actor, session, seq, sig, body string
	}{
		{"POST", "/v1/sessions", operator1.ID, "fz-1", "0", sig, `{"package_id":"PKG-1"}`}, // valid: opens fz-1
		{"POST", "/v1/packages/PKG-1/scan", operator1.ID, "fz-1", "1", sig, `{}`},
		{"POST", "/v1/sessions/fz-1/commit", operator1.ID, "fz-1", "1", sig, `{}`},
		{"DELETE", "/v1/sessions/fz-1", operator1.ID, "fz-1", "1", sig, ``},
		{"POST", "/v1/packages", supplier.ID, "create-x", "0", sig, `{"id":"PKG-X","destination":"d","items":[]}`},
		{"POST", "/v1/sessions", "", "", "", "", ``},
		{"POST", "/v1/sessions", "a b", "s", "x", "%%%", `{`},
		{"PUT", "/v1/actors", "admin-1", "s", "0", base64.StdEncoding.EncodeToString(make([]byte, 64)), `{"id":"evil"}`},
		{"PATCH", "/v1/couriers", "admin-1", "s", "18446744073709551615", sig, `null`},
		{"GET", "/healthz", "", "", "", "", ""},
		{"GET", "/readyz", "", "", "", "", ""},
		{"GET", "/v1/node", "", "", "", "", ""},
		{"GET", "/v1/openapi.json", "", "", "", "", ""},
		{"GET", "/v1/sessions/fz-1", "", "", "", "", ""},
		{"GET", "/v1/sessions/fz-1/events", "", "", "", "", ""},
		{"GET", "/v1/packages/PKG-1?view=committed", "", "", "", "", ""},
		{"GET", "/v1/packages/PKG-1/history?view=x", "", "", "", "", ""},
		{"GET", "/v1/packages/%00", "", "", "", "", ""},
		{"HEAD", "/v1/couriers/courier-1", "", "", "", "", ""},
		{"OPTIONS", "*", "", "", "", "", ""},
		{"DELETE", "/", operator1.ID, "s", "0", sig, ""},
		{"POST", "/v1/packages/PKG-1/label?x=1#f", operator1.ID, "s", "0", sig, `{"courier_id":"courier-1"}`},
		{"GET", "//v1/packages/PKG-1", "", "", "", "", ""},
		{"POST", "/v1/./sessions", operator1.ID, "s", "0", sig, `{}`},
		{"GET", "/v1/sessions/../healthz", "", "", "", "", ""},
		{"BREW", "/coffee", "", "", "", "", ""},
	}
	for i, s := range seeds {
		x := exp
		if i%3 == 2 {
			x = "-" + exp
		}
		f.Add(s.method, s.target, s.actor, s.session, s.seq, x, s.sig, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, method, target, actor, session, seq, expires, sig string, body []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, method, "http://l2.test"+target, bytes.NewReader(body))
		if err != nil || req.URL.Host != "l2.test" || req.URL.Opaque != "" {
			return // not a request net/http would hand to a handler
		}
		req.RequestURI = req.URL.RequestURI()
		for h, v := range map[string]string{gateway.HeaderActor: actor, gateway.HeaderSession: session,
			gateway.HeaderSeq: seq, gateway.HeaderExpires: expires, gateway.HeaderSignature: sig} {
			if v != "" {
				req.Header.Set(h, v)
			}
		}
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, req)
		if p := e.log.take(); len(p) > 0 {
			t.Fatalf("%s %q: handler panicked: %v", method, target, p)
		}
		if !fuzzStatuses[rec.Code] {
			t.Fatalf("%s %q: status %d is not in the contract (body %q)", method, target, rec.Code, rec.Body)
		}
		ct := rec.Header().Get("Content-Type")
		switch {
		case req.URL.Path == "/metrics" && rec.Code == http.StatusOK:
			// Prometheus text format.
		case strings.HasSuffix(req.URL.Path, "/events") && rec.Code == http.StatusOK:
			if ct != "text/event-stream" {
				t.Fatalf("%s %q: event stream with Content-Type %q", method, target, ct)
			}
		default:
			if ct != "application/json" {
				t.Fatalf("%s %q: %d with Content-Type %q, want application/json (body %q)", method, target, rec.Code, ct, rec.Body)
			}
			if method != http.MethodHead && !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("%s %q: %d body is not JSON: %q", method, target, rec.Code, rec.Body)
			}
			if rec.Code >= 400 && method != http.MethodHead && errorCode(rec.Body.Bytes()) == "" {
				t.Fatalf("%s %q: %d without an error code: %q", method, target, rec.Code, rec.Body)
			}
		}
		if got := e.snapshot(); got != committed {
			t.Fatalf("%s %q changed L1: got %s, want %s", method, target, got, committed)
		}
	})
}
