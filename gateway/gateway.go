// Package gateway is an L2 node's HTTP surface: it authenticates the
// headers of each signed op, hands it to the session buffer, maps every
// outcome to a JSON answer with a fitting status, and serves sessions,
// their event streams, application queries, health, metrics and the
// OpenAPI document.
package gateway

import (
	"context"
	"crypto/ed25519"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/duet-bft/duet/buffer"
	"github.com/duet-bft/duet/console"
	"github.com/duet-bft/duet/proof"
	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service"
)

// Header names of a signed op and of the node's answers.
const (
	HeaderActor     = "Duet-Actor"
	HeaderSession   = "Duet-Session"
	HeaderSeq       = "Duet-Seq"
	HeaderSignature = "Duet-Signature"
	HeaderExpires   = "Duet-Expires"
	HeaderReceipt   = "Duet-Receipt"
	HeaderL1Height  = "Duet-L1-Height"
	HeaderL1Tx      = "Duet-L1-Tx"
)

// Chain is what the gateway reads of L1.
type Chain interface {
	Committed() (service.Store, int64)
	Ready() bool // caught up and able to serve
}

// Config configures the handler.
type Config struct {
	Buffer   *buffer.Buffer    // required
	App      *service.App      // required: its OpenAPI fragment is served with the framework's
	Registry *service.Registry // required: the app's registry as this node runs it
	Chain    Chain             // required
	Node     string            // this node's actor id
	NodeKey  ed25519.PublicKey // its public key, published at /v1/node
	// MaxBody bounds a request body; default protocol.MaxBody (64 KiB).
	MaxBody int64
	// DirectTimeout bounds the wait for L1 in direct mode; default 30s.
	DirectTimeout time.Duration
	// Metrics are the node's collectors (see NewMetrics); /metrics serves
	// Gatherer. Both nil: a private registry.
	Metrics  *Metrics
	Gatherer prometheus.Gatherer
	Logger   *slog.Logger
	// L1Query runs a query of the ledger (its ABCI query paths, such as
	// /evidence) on this node's follower. nil: GET /v1/evidence answers
	// 503.
	L1Query func(ctx context.Context, path string) (code uint32, value []byte, err error)
	// Network describes L1 for GET /v1/network; nil: only the height.
	Network func() Network
	// Prover builds session proofs for GET /v1/sessions/{id}/proof and
	// the app's certificates; nil: they answer 503.
	Prover Prover
	// Trust is the chain's genesis trust: the node checks each certificate's
	// proof before it serves it.
	Trust proof.Trust
	// Done, closed when the node stops, ends every event stream, so that
	// http.Server.Shutdown (which waits for running handlers) is not held
	// until its deadline by streams that could last for minutes. nil:
	// streams end only with their session or their client.
	Done <-chan struct{}
}

// Prover builds session proofs (package proof).
type Prover interface {
	// Proof returns a proof document (see proof.Request). Errors:
	// proof.ErrNotFound, ErrNotFinal, ErrNotYet.
	Proof(ctx context.Context, req proof.Request) ([]byte, error)
}

// Network is L1 as this node's follower knows it.
type Network struct {
	ChainID    string      `json:"chain_id"`
	Validators []Validator `json:"validators"`
	// ValidatorsHash is the hash of the genesis validator set (hex): what a
	// proof verifier trusts (package proof). Only as trustworthy as this
	// node: compare it with the one `duet verify --genesis G --trust` prints.
	ValidatorsHash string `json:"validators_hash,omitempty"`
}

// Validator is one validator of L1.
type Validator struct {
	Name    string `json:"name"`
	Address string `json:"address"` // hex
	Power   int64  `json:"power"`
	Signed  bool   `json:"signed_last"` // its vote is in the last committed block's commit
}

// NetworkView is GET /v1/network: L1 and this node, with recent step
// latencies and session finalities, for the console's network panel.
type NetworkView struct {
	Network
	Node     string   `json:"node"`
	App      AppID    `json:"app"`
	Height   int64    `json:"height"`
	Ready    bool     `json:"ready"`
	Queue    int      `json:"queue"`
	Steps    []Sample `json:"steps"`    // answered signed ops, newest last
	Finality []Sample `json:"finality"` // sessions L1 committed, newest last
}

// AppID names the application a node runs.
type AppID struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

type route struct {
	method, pattern string
	doc             string // the path OpenAPI documents it under, if not pattern
	h               http.Handler
}

// routes are the routes the gateway serves itself, besides the app's
// queries (GET) and signed ops (any other method) through its registry.
func (h *handler) routes(doc []byte) []route {
	return []route{
		{http.MethodGet, "/healthz", "", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		})},
		{http.MethodGet, "/readyz", "", http.HandlerFunc(h.ready)},
		{http.MethodGet, "/metrics", "", promhttp.HandlerFor(h.cfg.Gatherer, promhttp.HandlerOpts{})},
		{http.MethodGet, "/v1/openapi.json", "", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write(doc)
		})},
		{http.MethodGet, "/v1/node", "", http.HandlerFunc(h.node)},
		{http.MethodGet, "/v1/network", "", http.HandlerFunc(h.network)},
		{http.MethodGet, "/v1/evidence", "", http.HandlerFunc(h.evidence)},
		{http.MethodGet, "/v1/sessions/{id}", "", http.HandlerFunc(h.session)},
		{http.MethodGet, "/v1/sessions/{id}/events", "", http.HandlerFunc(h.events)},
		{http.MethodGet, "/v1/sessions/{id}/proof", "", http.HandlerFunc(h.proof)},
		{http.MethodGet, "/{$}", "/", console.Handler(h.cfg.App)},
		{http.MethodGet, "/console/", "/console/{file}", console.Handler(h.cfg.App)},
	}
}

// Routes lists the method and pattern of every route the gateway serves
// itself (besides the app's registry): what the framework's OpenAPI
// document must describe.
func Routes() [][2]string {
	var out [][2]string
	for _, rt := range (&handler{}).routes(nil) {
		p := rt.pattern
		if rt.doc != "" {
			p = rt.doc
		}
		out = append(out, [2]string{rt.method, p})
	}
	return out
}

// Receipt is the JSON in the Duet-Receipt header (standard base64).
type Receipt struct {
	protocol.Receipt
	Signature []byte `json:"signature"`
}

type handler struct {
	cfg     Config
	log     *slog.Logger
	mux     *http.ServeMux
	metrics *Metrics
}

// New returns the node's HTTP handler.
func New(cfg Config) (http.Handler, error) {
	if cfg.Buffer == nil || cfg.App == nil || cfg.Registry == nil || cfg.Chain == nil {
		return nil, errors.New("gateway: Buffer, App, Registry and Chain are required")
	}
	doc, err := OpenAPI(cfg.App)
	if err != nil {
		return nil, err
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = protocol.MaxBody
	}
	if cfg.DirectTimeout <= 0 {
		cfg.DirectTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		r := prometheus.NewRegistry()
		m, err := NewMetrics(r)
		if err != nil {
			return nil, err
		}
		cfg.Metrics, cfg.Gatherer = m, r
	}
	h := &handler{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), metrics: cfg.Metrics}
	for _, rt := range h.routes(doc) {
		h.mux.Handle(rt.method+" "+rt.pattern, rt.h)
	}
	if c := cfg.App.Certificates; c != nil {
		h.mux.HandleFunc("GET "+c.Path, h.certificate)
	}
	h.mux.HandleFunc("GET /", h.query)
	h.mux.HandleFunc("/", h.op)
	return h, nil
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if p := recover(); p != nil {
			h.log.Error("panic serving request", "path", r.URL.Path, "panic", p)
			writeError(w, http.StatusInternalServerError, "INTERNAL", "internal error")
		}
	}()
	if !canonicalPath(r.URL.EscapedPath()) {
		// ServeMux would answer with a redirect to the cleaned path.
		writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "path must be canonical: no empty, . or .. segments")
		return
	}
	h.mux.ServeHTTP(w, r)
}

// canonicalPath reports whether p is its own path.Clean (a trailing slash
// kept), which is what ServeMux routes without redirecting.
func canonicalPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	c := path.Clean(p)
	if c != "/" && strings.HasSuffix(p, "/") {
		c += "/"
	}
	return c == p
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	resp := service.Error(status, code, msg)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(resp.Body)
}

func (h *handler) ready(w http.ResponseWriter, r *http.Request) {
	if err := h.cfg.Buffer.Err(); err != nil {
		writeError(w, http.StatusServiceUnavailable, "UNAVAILABLE", err.Error())
		return
	}
	_, height := h.cfg.Chain.Committed()
	if !h.cfg.Chain.Ready() || height < 1 {
		writeError(w, http.StatusServiceUnavailable, "UNAVAILABLE", fmt.Sprintf("following L1: height %d, not caught up", height))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "height": height, "queue": h.cfg.Buffer.QueueDepth()})
}

// network answers GET /v1/network.
func (h *handler) network(w http.ResponseWriter, r *http.Request) {
	_, height := h.cfg.Chain.Committed()
	v := NetworkView{Node: h.cfg.Node, App: AppID{h.cfg.App.Name, h.cfg.App.Version}, Height: height,
		Ready: h.cfg.Chain.Ready() && h.cfg.Buffer.Err() == nil, Queue: h.cfg.Buffer.QueueDepth()}
	if h.cfg.Network != nil {
		v.Network = h.cfg.Network()
	}
	v.Steps, v.Finality = h.metrics.Recent()
	writeJSON(w, http.StatusOK, v)
}

// evidence answers GET /v1/evidence: L1's evidence records, from this
// node's follower.
func (h *handler) evidence(w http.ResponseWriter, r *http.Request) {
	if h.cfg.L1Query == nil {
		writeError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "this node cannot query L1's evidence")
		return
	}
	code, value, err := h.cfg.L1Query(r.Context(), "/evidence")
	if err != nil || code != 0 {
		writeError(w, http.StatusServiceUnavailable, "UNAVAILABLE", fmt.Sprintf("querying L1's evidence: code %d %v", code, err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(value)
}

func (h *handler) node(w http.ResponseWriter, r *http.Request) {
	_, height := h.cfg.Chain.Committed()
	writeJSON(w, http.StatusOK, map[string]any{"id": h.cfg.Node, "public_key": []byte(h.cfg.NodeKey), "height": height})
}

func (h *handler) session(w http.ResponseWriter, r *http.Request) {
	v, ok := h.cfg.Buffer.Lookup(r.PathValue("id"), r.URL.Query().Get("actor"))
	if !ok {
		writeError(w, http.StatusNotFound, "NOT_FOUND", "no session "+r.PathValue("id")+" on this node; for one L1 committed, name its actor: ?actor=ID")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"session": v})
}

// events streams a session's events as Server-Sent Events: every event so
// far, then each new one, ending with the final one, or when the node
// stops (the client asks again, or looks the session up).
func (h *handler) events(w http.ResponseWriter, r *http.Request) {
	past, ch, cancel, ok := h.cfg.Buffer.Subscribe(r.PathValue("id"))
	if !ok {
		writeError(w, http.StatusNotFound, "NOT_FOUND", "no session "+r.PathValue("id")+" on this node")
		return
	}
	defer cancel()
	fl, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	send := func(ev buffer.Event) {
		data, _ := json.Marshal(ev)
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev.Type, data)
	}
	for _, ev := range past {
		send(ev)
	}
	if fl != nil {
		fl.Flush()
	}
	for {
		select {
		case ev, open := <-ch:
			if !open {
				return
			}
			send(ev)
			if fl != nil {
				fl.Flush()
			}
		case <-r.Context().Done():
			return
		case <-h.cfg.Done:
			return
		}
	}
}

// query answers a GET route of the application: on L1's committed state
// with ?view=committed, else on the L2 view (committed state plus the
// writes of this node's sessions that are waiting for L1).
func (h *handler) query(w http.ResponseWriter, r *http.Request) {
	var st service.Store
	switch r.URL.Query().Get("view") {
	case "committed":
		st, _ = h.cfg.Chain.Committed()
	case "", "l2":
		st = h.cfg.Buffer.PendingView()
	default:
		writeError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "view must be committed or l2")
		return
	}
	resp, err := h.cfg.Registry.Query(st, r.URL.Path)
	if err != nil {
		h.log.Error("query: state read failed", "path", r.URL.Path, "err", err)
		writeError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "this node could not read its copy of L1's state")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(resp.Status)
	w.Write(resp.Body)
}

// op handles a signed mutating request.
func (h *handler) op(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
	default:
		writeError(w, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", r.Method+" not allowed")
		return
	}
	in, status, code, msg := h.parse(w, r)
	if status != 0 {
		writeError(w, status, code, msg)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.DirectTimeout)
	defer cancel()
	rep := h.cfg.Buffer.Do(ctx, in)
	if rep.Receipt != nil {
		raw, _ := json.Marshal(Receipt{Receipt: *rep.Receipt, Signature: rep.ReceiptSig})
		w.Header().Set(HeaderReceipt, base64.StdEncoding.EncodeToString(raw))
	}
	resp := rep.Resp
	kind := "step"
	if f := rep.Final; f != nil {
		kind = "direct"
		if f.Height > 0 {
			w.Header().Set(HeaderL1Height, strconv.FormatInt(f.Height, 10))
			w.Header().Set(HeaderL1Tx, f.TxHash)
		}
		if f.Status != buffer.StatusCommitted {
			resp = service.Error(http.StatusConflict, f.Code, "L1 rejected the operation: "+f.Reason)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	if resp.Status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(resp.Status)
	w.Write(resp.Body)
	took := time.Since(start)
	h.metrics.Step.WithLabelValues(kind, strconv.Itoa(resp.Status/100)+"xx").Observe(took.Seconds())
	if resp.OK() {
		h.metrics.sample(&h.metrics.recent.steps, took)
	}
}

// parse reads the signed-op headers and the body. A non-zero status is an
// error to answer with.
func (h *handler) parse(w http.ResponseWriter, r *http.Request) (in *buffer.Input, status int, code, msg string) {
	actor, session, seqs, sigs := r.Header.Get(HeaderActor), r.Header.Get(HeaderSession), r.Header.Get(HeaderSeq), r.Header.Get(HeaderSignature)
	exps := r.Header.Get(HeaderExpires)
	if actor == "" || session == "" || seqs == "" || sigs == "" || exps == "" {
		return nil, http.StatusUnauthorized, "UNAUTHENTICATED",
			fmt.Sprintf("a mutating request must be signed: headers %s, %s, %s, %s and %s are required", HeaderActor, HeaderSession, HeaderSeq, HeaderExpires, HeaderSignature)
	}
	if !protocol.ValidID(actor) {
		return nil, http.StatusUnauthorized, "UNAUTHENTICATED", "bad " + HeaderActor
	}
	if !protocol.ValidID(session) {
		return nil, http.StatusBadRequest, "INVALID_ARGUMENT", HeaderSession + " must be 1-64 characters of A-Za-z0-9._-"
	}
	seq, err := strconv.ParseUint(seqs, 10, 32)
	if err != nil || (len(seqs) > 1 && seqs[0] == '0') {
		return nil, http.StatusBadRequest, "MALFORMED", HeaderSeq + " must be a decimal integer"
	}
	expires, err := strconv.ParseInt(exps, 10, 64)
	if err != nil || expires < 0 || strconv.FormatInt(expires, 10) != exps {
		return nil, http.StatusBadRequest, "MALFORMED", HeaderExpires + " must be a decimal Unix time in milliseconds"
	}
	sig, err := base64.StdEncoding.DecodeString(sigs)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, http.StatusUnauthorized, "UNAUTHENTICATED", HeaderSignature + " must be the standard base64 of a 64-byte Ed25519 signature"
	}
	if !protocol.ValidPath(r.URL.Path) {
		return nil, http.StatusBadRequest, "INVALID_ARGUMENT", "bad path"
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, http.StatusRequestEntityTooLarge, "TOO_LARGE", fmt.Sprintf("body exceeds %d bytes", h.cfg.MaxBody)
		}
		return nil, http.StatusBadRequest, "MALFORMED", "reading body: " + err.Error()
	}
	return &buffer.Input{Session: session, Seq: seq, Actor: actor, Method: r.Method, Path: r.URL.Path,
		Body: body, Signature: sig, Expires: expires}, 0, "", ""
}
