package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/duet-bft/duet/localnet"
)

// bin is the duet binary built once for the tests of this package.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "duet-bin")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "duet")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// TestUp runs the real binary: `duet up` starts four validator processes,
// writes cluster.json, restarts a validator killed with -9, stops on
// SIGTERM, and a second `up` on the same directory resumes the chain.
func TestUp(t *testing.T) {
	home := filepath.Join(t.TempDir(), "net")
	base := freeBasePort(t, 5)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", base+200)
	var out lockedBuffer // what duet up prints
	up := func() *exec.Cmd {
		os.Remove(filepath.Join(home, localnet.ClusterFile))
		cmd := exec.Command(bin, "up", "--home", home, "--base-port", fmt.Sprint(base), "--http", httpAddr)
		cmd.Stdout, cmd.Stderr = &out, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	stop := func(cmd *exec.Cmd) {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("duet up exited with %v after SIGTERM", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("duet up did not stop on SIGTERM")
		}
	}

	cmd := up()
	cl := waitCluster(t, home)
	if len(cl.Validators) != 4 || len(cl.L2) != 1 || len(cl.Actors) < 9 {
		t.Fatalf("cluster.json: %d validators, %d L2 nodes, %d actors", len(cl.Validators), len(cl.L2), len(cl.Actors))
	}
	if cl.L2[0].HTTP != httpAddr {
		t.Errorf("L2 http %q, want %q", cl.L2[0].HTTP, httpAddr)
	}
	// It prints the console's address and a sign-in link per demo actor,
	// and the console answers there.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), "operator-1 "); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("duet up printed no sign-in links:\n%s", out.String())
		}
	}
	if printed := out.String(); !strings.Contains(printed, "Console: http://"+httpAddr+"/") ||
		!strings.Contains(printed, "http://"+httpAddr+"/#actor=operator-1&key=") || !strings.Contains(printed, "development keys") {
		t.Errorf("duet up printed:\n%s", printed)
	}
	if resp, err := http.Get("http://" + httpAddr + "/"); err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("the console: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	var ready struct {
		Status string `json:"status"`
	}
	getJSON(t, "http://"+httpAddr+"/readyz", &ready)
	if ready.Status != "ready" {
		t.Errorf("L2 /readyz status %q", ready.Status)
	}
	roles := map[string]int{}
	for _, a := range cl.Actors {
		roles[a.Role]++
		if len(a.PublicKey) != 32 || len(a.PrivateKey) != 32 {
			t.Errorf("actor %s: key sizes %d/%d", a.ID, len(a.PublicKey), len(a.PrivateKey))
		}
	}
	for _, r := range []string{"supplier", "operator", "courier", "auditor"} {
		if roles[r] < 2 {
			t.Errorf("got %d actors of role %s, want >= 2", roles[r], r)
		}
	}
	if roles["admin"] < 1 {
		t.Error("no admin actor")
	}
	for _, v := range cl.Validators {
		if h := height(t, v.RPC); h < 1 {
			t.Errorf("%s: height %d", v.ID, h)
		}
		var vals struct {
			Result struct {
				Total string `json:"total"`
			} `json:"result"`
		}
		getJSON(t, v.RPC+"/validators", &vals)
		if vals.Result.Total != "4" {
			t.Errorf("%s: /validators total %q, want 4", v.ID, vals.Result.Total)
		}
	}

	// A validator killed with -9 is restarted, and cluster.json follows.
	victim := cl.Validators[1]
	syscall.Kill(victim.PID, syscall.SIGKILL)
	deadline := time.Now().Add(60 * time.Second)
	for {
		var now localnet.Network
		if raw, err := os.ReadFile(filepath.Join(home, localnet.ClusterFile)); err == nil && json.Unmarshal(raw, &now) == nil &&
			now.Validators[1].PID != victim.PID && now.Validators[1].PID != 0 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			h, err := localnet.Height(ctx, &http.Client{}, victim.RPC)
			cancel()
			if err == nil && h >= 1 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("killed validator was not restarted")
		}
		time.Sleep(100 * time.Millisecond)
	}

	before := height(t, cl.Validators[0].RPC)
	stop(cmd)
	for _, v := range cl.Validators {
		if syscall.Kill(v.PID, 0) == nil {
			// The restarted one has a new pid; the rest must be gone.
			if v.ID != victim.ID {
				t.Errorf("%s (pid %d) still running after up stopped", v.ID, v.PID)
			}
		}
	}

	// Resume on the same directory: same chain, same or later height.
	cmd = up()
	cl2 := waitCluster(t, home)
	if cl2.ChainID != cl.ChainID || cl2.Actors[0].ID != cl.Actors[0].ID ||
		string(cl2.Actors[0].PublicKey) != string(cl.Actors[0].PublicKey) {
		t.Error("resumed network has different chain id or actors")
	}
	if after := height(t, cl2.Validators[0].RPC); after < before {
		t.Errorf("resumed at height %d, was %d", after, before)
	}
	stop(cmd)
}

func waitCluster(t *testing.T, home string) localnet.Network {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		raw, err := os.ReadFile(filepath.Join(home, localnet.ClusterFile))
		if err == nil {
			var n localnet.Network
			if err := json.Unmarshal(raw, &n); err != nil {
				t.Fatalf("cluster.json: %v", err)
			}
			return n
		}
		if time.Now().After(deadline) {
			t.Fatal("cluster.json never written")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func height(t *testing.T, rpc string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h, err := localnet.Height(ctx, &http.Client{}, rpc)
	if err != nil {
		t.Fatalf("%s/status: %v", rpc, err)
	}
	return h
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
}

func freeBasePort(t *testing.T, n int) int {
	t.Helper()
	base, err := localnet.FreeBasePort(n)
	if err != nil {
		t.Fatal(err)
	}
	return base
}

// lockedBuffer is a bytes.Buffer a child process writes to while the test
// reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
