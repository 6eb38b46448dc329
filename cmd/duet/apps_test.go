package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/duet-bft/duet/client"
	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service"
)

// TestApps: duet apps lists every application the binary carries, one per
// line, name first.
func TestApps(t *testing.T) {
	out, err := exec.Command(bin, "apps").Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	apps := service.Apps()
	if len(lines) != len(apps) || len(apps) < 2 {
		t.Fatalf("duet apps:\n%s\nwant %d lines", out, len(apps))
	}
	for i, a := range apps {
		if f := strings.Fields(lines[i]); len(f) < 2 || f[0] != a.Name || f[1] != a.Version {
			t.Errorf("line %d: %q, want %s %s first", i, lines[i], a.Name, a.Version)
		}
	}
}

// TestUpApps runs every application end to end with duet up --app on four
// validators: abci_info names it on every validator, the L2 node serves
// its OpenAPI, and an iteration of its bench workload (its prep ops, then
// its session) is committed by L1. A node asked to run another app on the
// chain refuses to start, saying which app the chain runs.
func TestUpApps(t *testing.T) {
	for _, app := range service.Apps() {
		t.Run(app.Name, func(t *testing.T) {
			n := startNetwork(t, 4, 1, "--app", app.Name)
			for _, v := range n.Validators {
				var info struct {
					Result struct {
						Response struct {
							Data    string `json:"data"`
							Version string `json:"version"`
						} `json:"response"`
					} `json:"result"`
				}
				getJSON(t, v.RPC+"/abci_info", &info)
				if r := info.Result.Response; r.Data != app.Name || r.Version != app.Version {
					t.Errorf("%s abci_info: data %q version %q, want %s %s", v.ID, r.Data, r.Version, app.Name, app.Version)
				}
			}
			var doc struct {
				Info struct {
					App map[string]string `json:"x-duet-app"`
				} `json:"info"`
				Paths map[string]any `json:"paths"`
			}
			getJSON(t, "http://"+n.L2[0].HTTP+"/v1/openapi.json", &doc)
			if doc.Info.App["name"] != app.Name || doc.Paths["/v1/sessions"] == nil {
				t.Errorf("openapi.json: app %v, %d paths", doc.Info.App, len(doc.Paths))
			}
			if app.Workload != nil {
				runIteration(t, n, app.Workload)
			}

			// The chain's app, and nothing else, runs on its homes.
			other := "supplychain"
			if app.Name == other {
				other = "assets"
			}
			out, err := exec.Command(bin, "node", "--home", filepath.Join(n.home, "v0"), "--app", other).CombinedOutput()
			if err == nil || !strings.Contains(string(out), `runs the application "`+app.Name+`"`) {
				t.Errorf("duet node --app %s on a %s chain: %v\n%s", other, app.Name, err, out)
			}
		})
	}
}

// runIteration runs iteration 0 of w on n as duet bench does, and requires
// L1 to commit each of its sessions.
func runIteration(t *testing.T, n *network, w *service.Workload) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := n.client(0)
	it := w.Iteration(fmt.Sprintf("e2e%d", time.Now().UnixNano()%1e6), 0)
	wait := func(s *client.Session) {
		t.Helper()
		f, err := s.Wait(ctx)
		if err != nil || f.Status != protocol.StatusCommitted {
			t.Fatalf("session %s: %+v %v", s.ID, f, err)
		}
	}
	do := func(s *client.Session, op service.BenchOp) {
		t.Helper()
		signer := s.Signer()
		if _, err := s.Do(ctx, op.Method, op.Path, op.BodyFor(signer.ID, signer.Key), nil); err != nil {
			t.Fatalf("%s: %v", op.Name, err)
		}
	}
	for k, op := range it.Prep {
		s := c.NewSession(n.signer(op.Role+"-1"), fmt.Sprintf("prep-%d", k))
		if err := s.Start(ctx, nil); err != nil {
			t.Fatal(err)
		}
		do(s, op)
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		wait(s)
	}
	s := c.NewSession(n.signer(w.Role+"-1"), "measured")
	start := it.Start
	if start == nil {
		start = []byte(`{}`)
	}
	if err := s.Start(ctx, start); err != nil {
		t.Fatal(err)
	}
	for _, op := range it.Steps {
		do(s, op)
	}
	if err := s.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	wait(s)
}
