package l2

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// serverTLS loads the gateway's certificate and key that fc names, with
// relative paths taken in dir (the node's config directory). It returns
// nil when fc names neither (plain HTTP). An error names the field and
// the file at fault.
func serverTLS(fc FileConfig, dir string) (*tls.Config, error) {
	if fc.TLSCert == "" && fc.TLSKey == "" {
		return nil, nil
	}
	certFile, keyFile := inDir(dir, fc.TLSCert), inDir(dir, fc.TLSKey)
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("l2: tls_cert: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("l2: tls_key: %w", err)
	}
	b := pemBlock(certPEM, "CERTIFICATE")
	if b == nil {
		return nil, fmt.Errorf("l2: tls_cert %s: no PEM CERTIFICATE block", certFile)
	}
	if _, err := x509.ParseCertificate(b.Bytes); err != nil {
		return nil, fmt.Errorf("l2: tls_cert %s: %w", certFile, err)
	}
	if pemBlock(keyPEM, "PRIVATE KEY") == nil {
		return nil, fmt.Errorf("l2: tls_key %s: no PEM PRIVATE KEY block", keyFile)
	}
	// What is left: a key that does not parse, or not the certificate's
	// (tls's message says which).
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("l2: tls_cert %s, tls_key %s: %w", certFile, keyFile, err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}, nil
}

func inDir(dir, path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(dir, path)
}

// pemBlock returns the first PEM block of raw whose type ends in suffix
// (an EC key may follow EC PARAMETERS), or nil.
func pemBlock(raw []byte, suffix string) *pem.Block {
	for {
		var b *pem.Block
		b, raw = pem.Decode(raw)
		if b == nil || strings.HasSuffix(b.Type, suffix) {
			return b
		}
	}
}

// newServer returns the gateway's HTTP server: HTTPS only if tc is not
// nil. Its own errors (a failed TLS handshake) go to log as warnings.
func newServer(h http.Handler, tc *tls.Config, log *slog.Logger) *http.Server {
	return &http.Server{Handler: h, TLSConfig: tc, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
}

// serve serves srv on ln until it shuts down: over TLS if srv has a TLS
// config (HTTP/2 or HTTP/1.1), else plain HTTP.
func serve(srv *http.Server, ln net.Listener) error {
	if srv.TLSConfig != nil {
		return srv.ServeTLS(ln, "", "")
	}
	return srv.Serve(ln)
}
