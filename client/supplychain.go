package client

import (
	"context"
	"encoding/base64"
	"net/http"

	"github.com/duet-bft/duet/apps/supplychain"
)

// Typed calls of the supply-chain application.

// NewPackage is what a supplier declares; CreatePackage signs the manifest.
type NewPackage struct {
	ID          string
	Destination string
	Items       []supplychain.Item
}

// CreatePackage creates a package in direct mode (answered after L1
// finality), with the manifest signed by the supplier.
func (c *Client) CreatePackage(ctx context.Context, supplier Signer, sessionID string, p NewPackage) (*Result, error) {
	return c.NewSession(supplier, sessionID).CreatePackage(ctx, p)
}

// CreatePackage creates a package as the next op of this session (seq 0
// makes it a direct-mode op).
func (s *Session) CreatePackage(ctx context.Context, p NewPackage) (*Result, error) {
	sig := ed25519Sign(s.signer, supplychain.ManifestBytes(p.ID, s.signer.ID, p.Destination, p.Items))
	body := map[string]any{"id": p.ID, "destination": p.Destination, "items": p.Items,
		"manifest_signature": base64.StdEncoding.EncodeToString(sig)}
	return s.Do(ctx, http.MethodPost, supplychain.PathPackages, body, nil)
}

// Scan returns the expected contents of a package.
func (s *Session) Scan(ctx context.Context, pkg string) (*Result, error) {
	return s.Do(ctx, http.MethodPost, supplychain.PathPackages+"/"+pkg+"/scan", map[string]any{}, nil)
}

// Validate checks the observed contents and the supplier's manifest signature.
func (s *Session) Validate(ctx context.Context, pkg string, observed []supplychain.ObservedItem, out *supplychain.Validation) (*Result, error) {
	return s.Do(ctx, http.MethodPost, supplychain.PathPackages+"/"+pkg+"/validate",
		map[string]any{"observed_items": observed}, orNil(out))
}

// QC records a quality check.
func (s *Session) QC(ctx context.Context, pkg string, passed bool, notes string, checks map[string]any) (*Result, error) {
	if checks == nil {
		checks = map[string]any{}
	}
	return s.Do(ctx, http.MethodPost, supplychain.PathPackages+"/"+pkg+"/qc",
		map[string]any{"passed": passed, "notes": notes, "checks": checks}, nil)
}

// Label assigns a courier and returns the tracking number.
func (s *Session) Label(ctx context.Context, pkg, courier string, out *supplychain.Label) (*Result, error) {
	return s.Do(ctx, http.MethodPost, supplychain.PathPackages+"/"+pkg+"/label",
		map[string]any{"courier_id": courier}, orNil(out))
}

// orNil turns a nil typed pointer into a nil interface, so Do skips decoding.
func orNil[T any](p *T) any {
	if p == nil {
		return nil
	}
	return p
}
