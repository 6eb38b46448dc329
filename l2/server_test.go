package l2

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/duet-bft/duet/client"
)

// selfSigned makes a self-signed certificate for 127.0.0.1 and returns it
// and its key as PEM (the key as PKCS #8).
func selfSigned(t *testing.T) (certPEM, keyPEM []byte, key *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "l2-0"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), key
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestServeTLS serves HTTPS as Start does, with a certificate named
// relative to the config directory: a client that trusts the certificate
// gets its answer over TLS 1.2 or later, and so does the SDK given that
// client; a client that does not trust it, one that offers only TLS 1.1,
// and one that speaks plain HTTP get no answer from the handler.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir() // the node's config directory
	certPEM, keyPEM, _ := selfSigned(t)
	writeFile(t, filepath.Join(dir, "tls", "cert.pem"), certPEM)
	writeFile(t, filepath.Join(dir, "tls", "key.pem"), keyPEM)
	tc, err := serverTLS(FileConfig{TLSCert: "tls/cert.pem", TLSKey: "tls/key.pem"}, dir)
	if err != nil || tc == nil {
		t.Fatalf("serverTLS: %v, %v", tc, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/node", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"l2-0"}`)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(mux, tc, slog.New(slog.DiscardHandler))
	go serve(srv, ln)
	t.Cleanup(func() { srv.Close() })
	addr := ln.Addr().String()

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	trusting := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := trusting.Get("https://" + addr + "/v1/node")
	if err != nil {
		t.Fatalf("HTTPS with the certificate trusted: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != `{"id":"l2-0"}` || resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Errorf("HTTPS with the certificate trusted: got %d %s over %+v", resp.StatusCode, body, resp.TLS)
	}

	// The SDK over HTTPS: its transport told to trust the certificate.
	c := client.New("https://" + addr)
	c.HTTP.Transport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: pool}
	var node struct{ ID string }
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Get(ctx, "/v1/node", &node); err != nil || node.ID != "l2-0" {
		t.Errorf("client.Get over HTTPS: got %+v, %v", node, err)
	}

	untrusting := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	_, err = untrusting.Get("https://" + addr + "/v1/node")
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("HTTPS without trusting the certificate: got %v, want x509.UnknownAuthorityError", err)
	}

	old := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool,
		MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}}}
	if _, err := old.Get("https://" + addr + "/v1/node"); err == nil {
		t.Error("TLS 1.1 client: got an answer, want a failed handshake")
	}

	resp, err = (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/v1/node")
	if err != nil {
		t.Fatalf("plain HTTP to the HTTPS port: %v, want 400 from the TLS layer", err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || strings.Contains(string(body), "l2-0") {
		t.Errorf("plain HTTP to the HTTPS port: got %d %s, want 400 from the TLS layer", resp.StatusCode, body)
	}
}

// TestServerTLSErrors: each bad certificate or key stops the start with
// an error that names the field and the file.
func TestServerTLSErrors(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM, key := selfSigned(t)
	otherCert, otherKey, _ := selfSigned(t)
	ecDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	// As openssl ecparam -genkey writes it: the curve's parameters first.
	ecKey := append(pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7}}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER})...)
	files := map[string][]byte{
		"cert.pem": certPEM, "key.pem": keyPEM, "ec-key.pem": ecKey, "other-cert.pem": otherCert, "other-key.pem": otherKey,
		"garbage.pem":  []byte("not PEM\n"),
		"bad-cert.pem": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not DER")}),
		"bad-key.pem":  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("not DER")}),
	}
	for name, data := range files {
		writeFile(t, filepath.Join(dir, name), data)
	}
	abs := filepath.Join(dir, "cert.pem")
	tests := []struct {
		name, cert, key string
		want            []string // in the error; nil for none
	}{
		{"relative", "cert.pem", "key.pem", nil},
		{"absolute", abs, "key.pem", nil},
		{"EC key after its parameters", "cert.pem", "ec-key.pem", nil},
		{"no cert file", "missing.pem", "key.pem", []string{"tls_cert", filepath.Join(dir, "missing.pem")}},
		{"no key file", "cert.pem", "missing.pem", []string{"tls_key", filepath.Join(dir, "missing.pem")}},
		{"cert not PEM", "garbage.pem", "key.pem", []string{"tls_cert", filepath.Join(dir, "garbage.pem"), "no PEM CERTIFICATE"}},
		{"key not PEM", "cert.pem", "garbage.pem", []string{"tls_key", filepath.Join(dir, "garbage.pem"), "no PEM PRIVATE KEY"}},
		{"key as cert", "key.pem", "key.pem", []string{"tls_cert", filepath.Join(dir, "key.pem")}},
		{"cert not DER", "bad-cert.pem", "key.pem", []string{"tls_cert", filepath.Join(dir, "bad-cert.pem")}},
		{"key not DER", "cert.pem", "bad-key.pem", []string{"tls_key", filepath.Join(dir, "bad-key.pem"), "private key"}},
		{"key of another certificate", "cert.pem", "other-key.pem", []string{"tls_cert", "tls_key", abs, filepath.Join(dir, "other-key.pem"), "does not match"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc, err := serverTLS(FileConfig{TLSCert: tt.cert, TLSKey: tt.key}, dir)
			if tt.want == nil {
				if err != nil || tc == nil || tc.MinVersion != tls.VersionTLS12 || len(tc.Certificates) != 1 {
					t.Fatalf("serverTLS: got %+v, %v; want one certificate, TLS 1.2 at least", tc, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("serverTLS: no error, want one naming %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("serverTLS: got %v, want it to name %q", err, w)
				}
			}
		})
	}
	if tc, err := serverTLS(FileConfig{}, dir); tc != nil || err != nil {
		t.Errorf("serverTLS without tls_cert and tls_key: got %v, %v; want plain HTTP", tc, err)
	}
}
