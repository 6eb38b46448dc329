package localnet

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWaitReadyOtherNetwork: a node whose RPC port is answered by another
// network's node (another node id) fails readiness at once, saying so,
// rather than passing for the node.
func TestWaitReadyOtherNetwork(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"result":{"node_info":{"id":"othernode"},"sync_info":{"latest_block_height":"12"}}}`))
	}))
	defer srv.Close()
	c := &child{node: &Node{ID: "v0", RPC: srv.URL, NodeID: "mynode"}, done: make(chan struct{})}
	start := time.Now()
	err := waitReady(context.Background(), []*child{c}, 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "answers as node othernode, not v0's mynode") || !strings.Contains(err.Error(), "another network") {
		t.Fatalf("got %v", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("took %s: it should fail at once", time.Since(start))
	}
}

// TestWaitReadyExited: a node that exits while starting fails readiness at
// once, with the end of its log (where "bind: address already in use"
// would be).
func TestWaitReadyExited(t *testing.T) {
	home := t.TempDir()
	if err := os.WriteFile(filepath.Join(home, "node.log"), []byte("starting\nlisten tcp 127.0.0.1:26656: bind: address already in use\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("false")
	cmd.Run()
	c := &child{node: &Node{ID: "v0", Home: home, RPC: "http://127.0.0.1:1"}, cmd: cmd, done: make(chan struct{})}
	close(c.done)
	err := waitReady(context.Background(), []*child{c}, 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "v0 exited while starting") || !strings.Contains(err.Error(), "bind: address already in use") {
		t.Fatalf("got %v", err)
	}
}
