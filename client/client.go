// Package client is the Go SDK of a duet L2 node: it signs each op with the
// actor's Ed25519 key over the op chain, keeps the session's seq and prev
// hash, checks the node's receipts, and follows sessions to L1 finality.
package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/duet-bft/duet/proof"
	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service"
)

// Signer is an actor and its key.
type Signer struct {
	ID  string
	Key ed25519.PrivateKey
}

// Client talks to one L2 node.
type Client struct {
	BaseURL string       // e.g. http://127.0.0.1:8080
	HTTP    *http.Client // nil: a client with no timeout (SSE streams are long)
	// NodeKey, when set, makes every op check the node's receipt: signed by
	// this key, for this op and for the result received.
	NodeKey ed25519.PublicKey
	// OpLifetime is how long after signing an op expires (the expiry is in
	// the signed bytes): L2 executes it only before then, and L1 applies a
	// session only in a block no later than its last op's expiry. After
	// that, an op that failed or went unanswered can never take effect.
	// 0 means DefaultOpLifetime.
	OpLifetime time.Duration
}

// DefaultOpLifetime is the expiry of an op after it is signed, unless
// Client.OpLifetime says otherwise. It bounds how long a commit may wait
// for L1 (an L1 outage longer than this rejects the session as EXPIRED).
const DefaultOpLifetime = 10 * time.Minute

// New returns a client of the node at baseURL. Its connections are kept
// for reuse however many goroutines share it: Go's default transport keeps
// only two idle connections per host, so concurrent operators would each
// open a new TCP connection for most of their steps.
//
// An https:// baseURL is checked against the system's roots. For a node
// whose certificate is signed by a private CA (or self-signed), give the
// transport that CA:
//
//	pool := x509.NewCertPool()
//	pool.AppendCertsFromPEM(caPEM)
//	c := client.New("https://l2.example:8080")
//	c.HTTP.Transport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: pool}
func New(baseURL string) *Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns, t.MaxIdleConnsPerHost = 1024, 1024
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), HTTP: &http.Client{Transport: t}}
}

// MaxResponseBytes bounds an answer the client reads: the largest is a
// session proof (proof.MaxProofBytes). A node is trusted for nothing, so it
// cannot make a client read without end.
const MaxResponseBytes = proof.MaxProofBytes

// Error is a non-2xx answer.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// Receipt is a node's signed acknowledgement of an op: a promise that
// CheckReceipt judges against a session proof.
type Receipt = proof.Receipt

// Result is the answer to a signed op.
type Result struct {
	Status  int
	Body    json.RawMessage
	Receipt *Receipt
	// L1 height and tx hash, for a direct-mode op.
	Height int64
	TxHash string
}

// Session is a session of one actor on one node. It is not safe for
// concurrent use: ops of a session are sequential by construction.
type Session struct {
	c      *Client
	signer Signer
	ID     string
	// Expires, if set, is the expiry of every op the session signs from
	// now on; otherwise each op expires Client.OpLifetime after signing.
	Expires time.Time
	seq     uint64
	prev    protocol.Hash
}

// NewSession prepares a session id for signer; nothing is sent until Start
// (or a direct-mode op).
func (c *Client) NewSession(signer Signer, id string) *Session {
	return &Session{c: c, signer: signer, ID: id}
}

// Signer is who signs the session's ops.
func (s *Session) Signer() Signer { return s.signer }

// Seq is the seq of the next op.
func (s *Session) Seq() uint64 { return s.seq }

// Do signs and sends op s.Seq(); on success the session advances. body is
// JSON-encoded unless it is []byte or json.RawMessage. out, if not nil,
// receives the decoded body.
func (s *Session) Do(ctx context.Context, method, path string, body, out any) (*Result, error) {
	raw, err := encodeBody(body)
	if err != nil {
		return nil, err
	}
	lifetime := s.c.OpLifetime
	if lifetime <= 0 {
		lifetime = DefaultOpLifetime
	}
	expires := time.Now().Add(lifetime).UnixMilli()
	if !s.Expires.IsZero() {
		expires = s.Expires.UnixMilli()
	}
	signed := protocol.OpBytes(s.ID, s.seq, s.prev, method, path, raw, expires)
	sig := ed25519.Sign(s.signer.Key, signed)
	req, err := http.NewRequestWithContext(ctx, method, s.c.BaseURL+path, bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Duet-Actor", s.signer.ID)
	req.Header.Set("Duet-Session", s.ID)
	req.Header.Set("Duet-Seq", strconv.FormatUint(s.seq, 10))
	req.Header.Set("Duet-Expires", strconv.FormatInt(expires, 10))
	req.Header.Set("Duet-Signature", base64.StdEncoding.EncodeToString(sig))
	res, err := s.c.do(req, out)
	if err != nil {
		return res, err
	}
	if rc := res.Receipt; s.c.NodeKey != nil {
		kind := service.Classify(s.ID, s.seq, method, path).String()
		if rc == nil || !rc.Verify(s.c.NodeKey, rc.Signature) || rc.Actor != s.signer.ID || rc.Session != s.ID || rc.Seq != s.seq || rc.Kind != kind || rc.Expires != expires ||
			rc.Op != protocol.OpHash(signed) || rc.Result != protocol.ResultHash(res.Status, res.Body) {
			return res, fmt.Errorf("client: receipt for %s seq %d does not match the op and its result", s.ID, s.seq)
		}
	}
	s.prev = protocol.OpHash(signed)
	s.seq++
	return res, nil
}

func encodeBody(body any) ([]byte, error) {
	switch b := body.(type) {
	case nil:
		return []byte("{}"), nil
	case []byte:
		return b, nil
	case json.RawMessage:
		return b, nil
	default:
		return json.Marshal(b)
	}
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP == nil {
		return http.DefaultClient
	}
	return c.HTTP
}

func (c *Client) do(req *http.Request, out any) (*Result, error) {
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return nil, err
	}
	if len(body) > MaxResponseBytes {
		return nil, fmt.Errorf("client: %s %s: the answer is over %d bytes (MaxResponseBytes)", req.Method, req.URL.Path, MaxResponseBytes)
	}
	res := &Result{Status: resp.StatusCode, Body: body, TxHash: resp.Header.Get("Duet-L1-Tx")}
	res.Height, _ = strconv.ParseInt(resp.Header.Get("Duet-L1-Height"), 10, 64)
	if h := resp.Header.Get("Duet-Receipt"); h != "" {
		raw, err := base64.StdEncoding.DecodeString(h)
		var rc Receipt
		if err == nil && json.Unmarshal(raw, &rc) == nil {
			res.Receipt = &rc
		}
	}
	if resp.StatusCode/100 != 2 {
		var e service.ErrorBody
		json.Unmarshal(body, &e)
		return res, &Error{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			return res, fmt.Errorf("client: decode %s: %w", req.URL.Path, err)
		}
	}
	return res, nil
}

// Start opens the session (op seq 0). start is the optional body, e.g.
// {"package_id":"PKG-1"}.
func (s *Session) Start(ctx context.Context, start any) error {
	_, err := s.Do(ctx, http.MethodPost, service.PathSessions, start, nil)
	return err
}

// Commit queues the session for L1 (202); follow it with Wait.
func (s *Session) Commit(ctx context.Context) error {
	_, err := s.Do(ctx, http.MethodPost, service.CommitPath(s.ID), []byte(service.ControlBody), nil)
	return err
}

// Abort ends the session and releases what it reserved.
func (s *Session) Abort(ctx context.Context) error {
	_, err := s.Do(ctx, http.MethodDelete, service.AbortPath(s.ID), []byte(service.ControlBody), nil)
	return err
}

// Wait follows the session to its end on L1 (see Client.Wait).
func (s *Session) Wait(ctx context.Context) (*protocol.Final, error) {
	return s.c.wait(ctx, s.ID, s.signer.ID)
}

// Direct runs one op as a one-op session (direct mode): the answer comes
// after L1 finality, with its height and tx hash.
func (c *Client) Direct(ctx context.Context, signer Signer, sessionID, method, path string, body, out any) (*Result, error) {
	return c.NewSession(signer, sessionID).Do(ctx, method, path, body, out)
}

// Get fetches a JSON document (a query route, a session) into out.
func (c *Client) Get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.BaseURL+path, nil)
	if err != nil {
		return err
	}
	_, err = c.do(req, out)
	return err
}

// Session returns a session's view: one the node holds, or, given its
// actor, one L1 committed (L1 keys sessions by actor and id). actor may be
// "".
func (c *Client) Session(ctx context.Context, id, actor string) (*protocol.SessionView, error) {
	var v struct {
		Session protocol.SessionView `json:"session"`
	}
	path := service.PathSessions + "/" + id
	if actor != "" {
		path += "?actor=" + url.QueryEscape(actor)
	}
	if err := c.Get(ctx, path, &v); err != nil {
		return nil, err
	}
	return &v.Session, nil
}

// Wait follows the session's event stream (SSE) until its final event and
// returns it. Session.Wait also finds a session the node no longer holds.
func (c *Client) Wait(ctx context.Context, id string) (*protocol.Final, error) {
	return c.wait(ctx, id, "")
}

func (c *Client) wait(ctx context.Context, id, actor string) (*protocol.Final, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.BaseURL+service.PathSessions+"/"+id+"/events", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		var e service.ErrorBody
		json.Unmarshal(body, &e)
		return nil, &Error{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		var ev protocol.Event
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			return nil, fmt.Errorf("client: event: %w", err)
		}
		if ev.Type == "final" && ev.Final != nil {
			// The node ends the stream after the final event: read to its
			// end so the connection goes back to the pool.
			io.Copy(io.Discard, resp.Body)
			return ev.Final, nil
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	// The stream ended without a final event (the node restarted): ask.
	v, err := c.Session(ctx, id, actor)
	if err != nil {
		return nil, err
	}
	if v.Final == nil {
		return nil, fmt.Errorf("client: event stream of %s ended while it is %s", id, v.Status)
	}
	return v.Final, nil
}
