package supplychain

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"net/http"

	"github.com/duet-bft/duet/client"
)

// Typed calls of the supply chain for Go programs, over the SDK's
// client.Session: wrap one to call the workflow by name,
//
//	s := supplychain.NewSession(c, operator, "wf-1")
//	err := s.Start(ctx, map[string]string{"package_id": "PKG-1"})
//	_, err = s.Scan(ctx, "PKG-1")

// Session is a client session with the supply chain's calls.
type Session struct{ *client.Session }

// NewSession prepares session id of signer on c (see client.NewSession).
func NewSession(c *client.Client, signer client.Signer, id string) Session {
	return Session{c.NewSession(signer, id)}
}

// NewPackage is what a supplier declares; CreatePackage signs the manifest.
type NewPackage struct {
	ID          string
	Destination string
	Items       []Item
}

// CreatePackage creates a package in direct mode (answered after L1
// finality), with the manifest signed by the supplier.
func CreatePackage(ctx context.Context, c *client.Client, supplier client.Signer, sessionID string, p NewPackage) (*client.Result, error) {
	return NewSession(c, supplier, sessionID).CreatePackage(ctx, p)
}

// CreatePackage creates a package as the next op of this session (seq 0
// makes it a direct-mode op).
func (s Session) CreatePackage(ctx context.Context, p NewPackage) (*client.Result, error) {
	signer := s.Signer()
	sig := ed25519.Sign(signer.Key, ManifestBytes(p.ID, signer.ID, p.Destination, p.Items))
	body := map[string]any{"id": p.ID, "destination": p.Destination, "items": p.Items,
		"manifest_signature": base64.StdEncoding.EncodeToString(sig)}
	return s.Do(ctx, http.MethodPost, PathPackages, body, nil)
}

// Scan returns the expected contents of a package.
func (s Session) Scan(ctx context.Context, pkg string) (*client.Result, error) {
	return s.Do(ctx, http.MethodPost, PathPackages+"/"+pkg+"/scan", map[string]any{}, nil)
}

// Validate checks the observed contents and the supplier's manifest signature.
func (s Session) Validate(ctx context.Context, pkg string, observed []ObservedItem, out *Validation) (*client.Result, error) {
	return s.Do(ctx, http.MethodPost, PathPackages+"/"+pkg+"/validate",
		map[string]any{"observed_items": observed}, orNil(out))
}

// QC records a quality check.
func (s Session) QC(ctx context.Context, pkg string, passed bool, notes string, checks map[string]any) (*client.Result, error) {
	if checks == nil {
		checks = map[string]any{}
	}
	return s.Do(ctx, http.MethodPost, PathPackages+"/"+pkg+"/qc",
		map[string]any{"passed": passed, "notes": notes, "checks": checks}, nil)
}

// Label assigns a courier and returns the tracking number.
func (s Session) Label(ctx context.Context, pkg, courier string, out *Label) (*client.Result, error) {
	return s.Do(ctx, http.MethodPost, PathPackages+"/"+pkg+"/label",
		map[string]any{"courier_id": courier}, orNil(out))
}

// orNil turns a nil typed pointer into a nil interface, so Do skips decoding.
func orNil[T any](p *T) any {
	if p == nil {
		return nil
	}
	return p
}
