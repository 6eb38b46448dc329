package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/duet-bft/duet/proof"
)

// Proof fetches a session proof (package proof): of session req.Session
// of req.Actor; canonical, the one every node builds alike, without the
// answers and receipts only the executing node holds; with Absent, a proof
// that L1 has not committed it, if it has not. While the node answers that
// the session is not final or not provable yet (the two blocks after it are
// a few seconds away), Proof asks again until ctx ends.
func (c *Client) Proof(ctx context.Context, req proof.Request) ([]byte, error) {
	path := "/v1/sessions/" + url.PathEscape(req.Session) + "/proof?actor=" + url.QueryEscape(req.Actor)
	if req.Canonical {
		path += "&canonical=1"
	}
	if req.Absent {
		path += "&absent=1"
	}
	if req.Node != "" {
		path += "&node=" + url.QueryEscape(req.Node)
	}
	for {
		raw, err := c.GetRaw(ctx, path)
		var e *Error
		if !errors.As(err, &e) || (e.Code != "NOT_YET" && e.Code != "NOT_FINAL") {
			return raw, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// GetRaw fetches a document's bytes as the node serves them.
func (c *Client) GetRaw(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.BaseURL+path, nil)
	if err != nil {
		return nil, err
	}
	res, err := c.do(req, nil)
	if res == nil {
		return nil, err
	}
	return res.Body, err
}

// VerifyProof checks a proof offline against the chain's genesis document
// (proof.Verify).
func VerifyProof(genesis, raw []byte) (*proof.Report, error) {
	trust, err := proof.TrustGenesis(genesis)
	if err != nil {
		return nil, err
	}
	return proof.Verify(trust, raw)
}

// VerifyCertificate checks a completion certificate: it fetches the
// canonical proof of the certificate's session from node, which it trusts
// for nothing, and checks that the proof is the one the certificate names
// (by hash), that it verifies against genesis, and that it says what the
// certificate says.
func VerifyCertificate(ctx context.Context, genesis, cert []byte, node *Client) (*proof.Certificate, *proof.Report, error) {
	trust, err := proof.TrustGenesis(genesis)
	if err != nil {
		return nil, nil, err
	}
	c, err := proof.ParseCertificate(cert)
	if err != nil {
		return nil, nil, &proof.CheckError{Check: "certificate", Err: err}
	}
	raw, err := node.Proof(ctx, proof.Request{Actor: c.Actor, Session: c.Session, Canonical: true})
	if err != nil {
		return c, nil, &proof.CheckError{Check: "fetch", Err: err}
	}
	return proof.VerifyCertificate(trust, cert, raw)
}

// JudgeReceipt fetches from node (trusted for nothing) the proof of the
// receipt's session, or of its absence, and judges the receipt against it.
func JudgeReceipt(ctx context.Context, genesis []byte, rc Receipt, node *Client) (*proof.Report, *proof.Promise, error) {
	raw, err := node.Proof(ctx, proof.Request{Actor: rc.Actor, Session: rc.Session, Absent: true, Node: rc.Node})
	if err != nil {
		return nil, nil, &proof.CheckError{Check: "fetch", Err: err}
	}
	return CheckReceipt(genesis, raw, rc)
}

// CheckReceipt verifies a proof against genesis and judges a receipt of
// its session against it: kept, or a broken promise by its node.
func CheckReceipt(genesis, raw []byte, rc Receipt) (*proof.Report, *proof.Promise, error) {
	trust, err := proof.TrustGenesis(genesis)
	if err != nil {
		return nil, nil, err
	}
	return proof.VerifyReceipt(trust, raw, rc)
}
