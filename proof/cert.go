package proof

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/duet-bft/duet/protocol"
)

// CertFormat is the first line of a completion certificate.
const CertFormat = "duet-cert/v1"

// Certificate is a completion certificate: a few lines of text, small
// enough for a QR code on a shipping label, that name a session's outcome
// and the hash of its canonical proof (the proof any node builds: without
// the answers and receipts only the executing node holds).
//
//	duet-cert/v1
//	chain <chain id>
//	key <state key of the object, among the keys the session wrote>
//	session <actor>/<session id>
//	height <L1 height>
//	outcome <verdict> <results digest, hex>
//	proof <sha256 of the canonical proof, hex>
type Certificate struct {
	ChainID string
	Key     string
	Actor   string
	Session string
	Height  int64
	Outcome string
	Results protocol.Hash
	Proof   string
}

// MaxCertBytes bounds a certificate a verifier reads.
const MaxCertBytes = 1024

// Encode returns the certificate's text.
func (c *Certificate) Encode() []byte {
	return fmt.Appendf(nil, "%s\nchain %s\nkey %s\nsession %s/%s\nheight %d\noutcome %s %s\nproof %s\n",
		CertFormat, c.ChainID, c.Key, c.Actor, c.Session, c.Height, c.Outcome, c.Results, c.Proof)
}

// ParseCertificate parses what Encode produces, strictly.
func ParseCertificate(raw []byte) (*Certificate, error) {
	if len(raw) > MaxCertBytes {
		return nil, fmt.Errorf("certificate of %d bytes, over %d", len(raw), MaxCertBytes)
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	want := []string{"", "chain", "key", "session", "height", "outcome", "proof"}
	if len(lines) != len(want) || lines[0] != CertFormat {
		return nil, fmt.Errorf("not a %s certificate (%d lines)", CertFormat, len(lines))
	}
	var c Certificate
	vals := make([]string, len(want))
	for i := 1; i < len(want); i++ {
		name, v, ok := strings.Cut(lines[i], " ")
		if !ok || name != want[i] || v == "" {
			return nil, fmt.Errorf("line %d: want %q", i+1, want[i])
		}
		vals[i] = v
	}
	c.ChainID, c.Key = vals[1], vals[2]
	var ok bool
	if c.Actor, c.Session, ok = strings.Cut(vals[3], "/"); !ok || !protocol.ValidID(c.Actor) || !protocol.ValidID(c.Session) {
		return nil, fmt.Errorf("session %q: want <actor>/<id>", vals[3])
	}
	h, err := strconv.ParseInt(vals[4], 10, 64)
	if err != nil || h < 1 {
		return nil, fmt.Errorf("height %q", vals[4])
	}
	c.Height = h
	code, digest, ok := strings.Cut(vals[5], " ")
	if !ok {
		return nil, fmt.Errorf("outcome %q: want <verdict> <digest>", vals[5])
	}
	c.Outcome = code
	if c.Results, err = protocol.ParseHash(digest); err != nil {
		return nil, fmt.Errorf("outcome digest: %w", err)
	}
	if _, err := protocol.ParseHash(vals[6]); err != nil {
		return nil, fmt.Errorf("proof hash: %w", err)
	}
	c.Proof = vals[6]
	if !bytes.Equal(c.Encode(), raw) {
		return nil, errors.New("not in canonical form")
	}
	return &c, nil
}

// CertificateOf returns the certificate of a verified proof for the
// object at key.
func CertificateOf(r *Report, key string) (*Certificate, error) {
	if !r.Valid || !slices.Contains(r.Writes, key) {
		return nil, fmt.Errorf("the session did not write %s", key)
	}
	results, err := protocol.ParseHash(r.Results)
	if err != nil {
		return nil, err
	}
	return &Certificate{ChainID: r.ChainID, Key: key, Actor: r.Actor, Session: r.Session, Height: r.Height,
		Outcome: r.Outcome, Results: results, Proof: r.ProofHash}, nil
}

// VerifyCertificate checks a certificate and the proof document it names
// (fetched from anywhere): the document's hash is the certificate's, the
// proof verifies against trust, and it says what the certificate says.
func VerifyCertificate(trust Trust, cert, doc []byte) (*Certificate, *Report, error) {
	c, err := ParseCertificate(cert)
	if err != nil {
		return nil, nil, &CheckError{"certificate", err}
	}
	if h := Hash(doc); h != c.Proof {
		return c, nil, &CheckError{"proof_hash", fmt.Errorf("the proof's hash is %s, the certificate names %s", h, c.Proof)}
	}
	r, err := Verify(trust, doc)
	if err != nil {
		return c, r, err
	}
	return c, r, CheckCertificate(c, r)
}

// CheckCertificate checks a certificate against the verified report of the
// proof it names: the proof's hash and everything the certificate says.
func CheckCertificate(c *Certificate, r *Report) error {
	want, err := CertificateOf(r, c.Key)
	if err != nil {
		return &CheckError{"certificate", err}
	}
	if !bytes.Equal(want.Encode(), c.Encode()) {
		return &CheckError{"certificate", fmt.Errorf("the certificate says\n%sthe proof says\n%s", c.Encode(), want.Encode())}
	}
	return nil
}
