package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestUpRefuses: duet up refuses at once, and says why, what would
// otherwise run a network that is not what was asked for: no validators
// (it became 4), too few to tolerate a fault (it ran without a word), an
// HTTP address that is not one (it failed later, naming a refused
// connection), and ports another program holds (it reported "network
// serving" for the other network, wrote a cluster.json of keys that
// network did not know, and restarted its failing children forever). No
// cluster.json is written.
func TestUpRefuses(t *testing.T) {
	base := freeBasePort(t, 5)
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base)) // v0's p2p port
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"no validators", []string{"--validators", "0"}, []string{"--validators 0", "want 1..64"}},
		{"two validators", []string{"--validators", "2"}, []string{"--validators 2", "tolerate no faulty validator", "--no-faults"}},
		{"a bad HTTP address", []string{"--http", "nonsense"}, []string{"--http", `"nonsense" is not HOST:PORT`}},
		{"a bad HTTP port", []string{"--http", "127.0.0.1:99999"}, []string{"--http", "not a number in 1..65535"}},
		{"negative L2 nodes", []string{"--l2", "-1"}, []string{"--l2 -1"}},
		{"a port in use", []string{"--base-port", fmt.Sprint(base)}, []string{fmt.Sprintf("v0's p2p address 127.0.0.1:%d", base), "address already in use", "--base-port"}},
	} {
		home := filepath.Join(t.TempDir(), "net")
		args := append([]string{"up", "--home", home, "--base-port", fmt.Sprint(base), "--http", fmt.Sprintf("127.0.0.1:%d", base+200)}, tc.args...)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cmd := exec.CommandContext(ctx, bin, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		timedOut := ctx.Err() != nil
		cancel()
		out := stderr.String()
		switch {
		case timedOut:
			t.Errorf("%s: duet up did not refuse (still running after 20 s):\n%s", tc.name, lastLines(out, 10))
		case err == nil:
			t.Errorf("%s: duet up exited 0:\n%s", tc.name, lastLines(out, 10))
		default:
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("%s: the error does not say %q:\n%s", tc.name, w, lastLines(out, 10))
				}
			}
		}
		if _, err := os.Stat(filepath.Join(home, "cluster.json")); err == nil {
			t.Errorf("%s: cluster.json written", tc.name)
		}
	}
}
