package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The answers of a fake L2 node at height 120 whose validator-3 missed
// the last block, as the gateway writes them.
const (
	statusNodeJSON    = `{"height":120,"id":"l2-0","public_key":"AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="}`
	statusNetworkJSON = `{"chain_id":"duet-local","validators":[` +
		`{"name":"validator-0","address":"0A","power":10,"signed_last":true},` +
		`{"name":"validator-1","address":"1B","power":10,"signed_last":true},` +
		`{"name":"validator-2","address":"2C","power":10,"signed_last":true},` +
		`{"name":"validator-3","address":"3D","power":10,"signed_last":false}],` +
		`"validators_hash":"ABCD","node":"l2-0","app":{"name":"supplychain","version":"1"},` +
		`"height":120,"ready":true,"queue":3,"steps":[],"finality":[]}`
	statusReadyJSON    = `{"height":120,"queue":3,"status":"ready"}`
	statusNotReadyJSON = `{"error":{"code":"UNAVAILABLE","message":"following L1: height 120, not caught up"}}`
	// A CometBFT RPC's /status (heights are strings).
	statusRPCJSON = `{"jsonrpc":"2.0","id":-1,"result":{"node_info":{"network":"%s","id":"abc"},` +
		`"sync_info":{"latest_block_height":"122","catching_up":false}}}`
)

// fakeNode serves the canned answers of an L2 node; ready says what
// /readyz answers.
func fakeNode(ready bool) http.Handler {
	mux := http.NewServeMux()
	answer := func(path string, status int, body string) {
		mux.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			io.WriteString(w, body)
		})
	}
	answer("/v1/node", http.StatusOK, statusNodeJSON)
	answer("/v1/network", http.StatusOK, statusNetworkJSON)
	if ready {
		answer("/readyz", http.StatusOK, statusReadyJSON)
	} else {
		answer("/readyz", http.StatusServiceUnavailable, statusNotReadyJSON)
	}
	return mux
}

// fakeRPC serves a CometBFT /status of chain.
func fakeRPC(t *testing.T, chain string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/status" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, strings.Replace(statusRPCJSON, "%s", chain, 1))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestStatus runs duet status against fake nodes and RPCs: its output
// (with the servers' URLs as NODE and RPC) and its exit status.
func TestStatus(t *testing.T) {
	ready := httptest.NewServer(fakeNode(true))
	defer ready.Close()
	notReady := httptest.NewServer(fakeNode(false))
	defer notReady.Close()
	down := httptest.NewServer(nil)
	down.Close()
	rpc, otherChain := fakeRPC(t, "duet-local"), fakeRPC(t, "other-chain")
	rpcDown := httptest.NewServer(nil)
	rpcDown.Close()
	summary := `node        l2-0 at NODE
public key  AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=
chain       duet-local
app         supplychain 1
L1 height   120
`
	tail := `validators  3 of 4 signed the last block; not: validator-3
queue       3 commits waiting for L1
`
	tests := []struct {
		name string
		args []string
		code int
		want string // the output; a trailing "..." matches any rest of the line
	}{
		{"ready", []string{"--node", ready.URL}, 0, summary + tail + "ready       yes\n"},
		{"ready, URL with a slash", []string{"--node", ready.URL + "/"}, 0, summary + tail + "ready       yes\n"},
		{"ready, with an RPC", []string{"--node", ready.URL, "--rpc", rpc.URL}, 0,
			summary + "L1 tip      122 at RPC: the node is 2 blocks behind\n" + tail + "ready       yes\n"},
		{"not ready", []string{"--node", notReady.URL, "--rpc", rpc.URL}, 1,
			summary + "L1 tip      122 at RPC: the node is 2 blocks behind\n" + tail + "ready       no\n" +
				"not ready: 503 UNAVAILABLE: following L1: height 120, not caught up\n"},
		{"unreachable", []string{"--node", down.URL}, 1, "unreachable: Get \"NODE/v1/node\": ...\n"},
		{"RPC of another chain", []string{"--node", ready.URL, "--rpc", otherChain.URL}, 1,
			summary + tail + "ready       yes\n" + `--rpc OTHER is on chain "other-chain", the node on "duet-local"` + "\n"},
		{"RPC unreachable", []string{"--node", ready.URL, "--rpc", rpcDown.URL}, 1,
			summary + tail + "ready       yes\n--rpc RPCDOWN: Get \"RPCDOWN/status\": ...\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			code := runStatus(context.Background(), tt.args, &out)
			got := strings.NewReplacer(ready.URL, "NODE", notReady.URL, "NODE", down.URL, "NODE", rpcDown.URL, "RPCDOWN",
				otherChain.URL, "OTHER", rpc.URL, "RPC").Replace(out.String())
			if code != tt.code || !matchLines(got, tt.want) {
				t.Errorf("duet status %v: exit %d, output:\n%s\nwant exit %d, output:\n%s", tt.args, code, got, tt.code, tt.want)
			}
		})
	}
}

// matchLines compares got with want line by line; a want line ending in
// "..." matches any line with that prefix.
func matchLines(got, want string) bool {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	if len(g) != len(w) {
		return false
	}
	for i := range w {
		if p, ok := strings.CutSuffix(w[i], "..."); ok && strings.HasPrefix(g[i], p) {
			continue
		}
		if g[i] != w[i] {
			return false
		}
	}
	return true
}

// TestStatusJSON: --json prints the status as one object, the reason for
// exit status 1 in error.
func TestStatusJSON(t *testing.T) {
	notReady := httptest.NewServer(fakeNode(false))
	defer notReady.Close()
	rpc := fakeRPC(t, "duet-local")
	var out bytes.Buffer
	if code := runStatus(context.Background(), []string{"--json", "--node", notReady.URL, "--rpc", rpc.URL}, &out); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	var got statusOutput
	dec := json.NewDecoder(&out)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("--json output: %v", err)
	}
	if got.URL != notReady.URL || got.ID != "l2-0" || len(got.PublicKey) != 32 || got.ChainID != "duet-local" ||
		got.App == nil || got.App.Name != "supplychain" || got.Height != 120 || got.Ready || got.Queue != 3 ||
		got.Validators != 4 || got.Signed != 3 || len(got.NotSigned) != 1 || got.NotSigned[0] != "validator-3" ||
		got.L1Height != 122 || got.Lag == nil || *got.Lag != 2 || !strings.HasPrefix(got.Error, "not ready: 503 UNAVAILABLE") {
		t.Errorf("--json: got %+v", got)
	}
}

// TestStatusTLS: an https node is reached when --ca trusts its
// certificate, and is unreachable, saying why, when nothing does.
func TestStatusTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(fakeNode(true))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake the client without --ca refuses
	srv.StartTLS()
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if code := runStatus(context.Background(), []string{"--node", srv.URL, "--ca", ca}, &out); code != 0 || !strings.HasSuffix(out.String(), "ready       yes\n") {
		t.Errorf("https with --ca: exit %d, output:\n%s", code, out.String())
	}
	out.Reset()
	if code := runStatus(context.Background(), []string{"--node", srv.URL}, &out); code != 1 || !strings.Contains(out.String(), "certificate signed by unknown authority") {
		t.Errorf("https without --ca: exit %d, output:\n%s", code, out.String())
	}
}

// TestStatusTimeout: a node that does not answer within --timeout is
// unreachable.
func TestStatusTimeout(t *testing.T) {
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer hang.Close()
	var out bytes.Buffer
	start := time.Now()
	code := runStatus(context.Background(), []string{"--node", hang.URL, "--timeout", "50ms"}, &out)
	if code != 1 || !strings.HasPrefix(out.String(), "unreachable: ") || !strings.Contains(out.String(), "deadline exceeded") || time.Since(start) > 2*time.Second {
		t.Errorf("hanging node: exit %d after %v, output:\n%s", code, time.Since(start), out.String())
	}
}

// TestStatusUsage: bad flags exit 2 with an error that names the flag and
// its value; -h prints the usage and exits 0.
func TestStatusUsage(t *testing.T) {
	noCA := filepath.Join(t.TempDir(), "none.pem")
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string // in the error
	}{
		{"no --node", nil, "--node is required"},
		{"an argument", []string{"--node", "http://127.0.0.1:1", "extra"}, `unexpected argument "extra"`},
		{"not a URL", []string{"--node", "127.0.0.1:8080"}, `--node "127.0.0.1:8080"`},
		{"another scheme", []string{"--node", "ftp://127.0.0.1:8080"}, `--node "ftp://127.0.0.1:8080"`},
		{"bad --rpc", []string{"--node", "http://127.0.0.1:1", "--rpc", "localhost"}, `--rpc "localhost"`},
		{"zero --timeout", []string{"--node", "http://127.0.0.1:1", "--timeout", "0s"}, "--timeout 0s"},
		{"bad --timeout", []string{"--node", "http://127.0.0.1:1", "--timeout", "soon"}, `"soon" for flag -timeout`},
		{"no --ca file", []string{"--node", "https://127.0.0.1:1", "--ca", noCA}, "--ca: open " + noCA},
		{"--ca not PEM", []string{"--node", "https://127.0.0.1:1", "--ca", notPEM}, "--ca " + notPEM + ": no PEM certificate"},
		{"unknown flag", []string{"--nodes", "http://127.0.0.1:1"}, "-nodes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseStatusArgs(tt.args); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("duet status %v: got %v, want an error naming %q", tt.args, err, tt.want)
			}
			var out bytes.Buffer
			if code := runStatus(context.Background(), tt.args, &out); code != 2 || out.Len() != 0 {
				t.Errorf("duet status %v: exit %d, output %q; want exit 2, the usage on stderr", tt.args, code, out.String())
			}
		})
	}
	var out bytes.Buffer
	if code := runStatus(context.Background(), []string{"-h"}, &out); code != 0 || !strings.Contains(out.String(), "duet status --node URL") {
		t.Errorf("duet status -h: exit %d, output %q", code, out.String())
	}
}
