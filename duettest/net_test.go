package duettest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	_ "github.com/duet-bft/duet/apps/assets"
	"github.com/duet-bft/duet/apps/supplychain"
	"github.com/duet-bft/duet/client"
	"github.com/duet-bft/duet/duettest"
	"github.com/duet-bft/duet/gateway"
	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service"
)

// demoActors are n actors of each of the app's demo roles: <role>-<i>.
func demoActors(app *service.App, n int) map[string]string {
	out := map[string]string{}
	for _, d := range app.DemoActors {
		for i := 1; i <= n; i++ {
			out[fmt.Sprintf("%s-%d", d.Role, i)] = d.Role
		}
	}
	return out
}

// TestNetWorkflow runs the supply chain's workflow on both layers: a
// direct-mode create answered after L1 applied it, then an operator's
// session answered by L2 step by step and committed by L1.
func TestNetWorkflow(t *testing.T) {
	n := duettest.New(t, duettest.Config{App: supplychain.App, Actors: demoActors(supplychain.App, 1)})
	ctx := context.Background()
	items := []supplychain.Item{{SKU: "SKU-1", Name: "Widget", Qty: 3}}
	res, err := supplychain.CreatePackage(ctx, n.Client(), n.Signer("supplier-1"), "c-1",
		supplychain.NewPackage{ID: "PKG-1", Destination: "DC", Items: items})
	if err != nil || res.Height == 0 {
		t.Fatalf("direct-mode create: %+v, %v; want an answer after L1", res, err)
	}
	s := supplychain.NewSession(n.Client(), n.Signer("operator-1"), "wf-1")
	must := duettest.MustOK(t, "step")
	if err := s.Start(ctx, map[string]string{"package_id": "PKG-1"}); err != nil {
		t.Fatal(err)
	}
	must(s.Scan(ctx, "PKG-1"))
	must(s.Validate(ctx, "PKG-1", []supplychain.ObservedItem{{SKU: "SKU-1", Qty: 3}}, nil))
	must(s.QC(ctx, "PKG-1", true, "", nil))
	must(s.Label(ctx, "PKG-1", "courier-1", nil))
	// Before the commit L1 has not seen the steps.
	if got := stage(t, n, "PKG-1"); got != supplychain.StageCreated {
		t.Fatalf("L1 stage before the commit: %s", got)
	}
	if err := s.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if f := n.Wait("wf-1", "operator-1"); f.Status != protocol.StatusCommitted {
		t.Fatalf("session: %+v", f)
	}
	if got := stage(t, n, "PKG-1"); got != supplychain.StageLabeled {
		t.Fatalf("L1 stage after the commit: %s", got)
	}
}

// TestNetSwitches: Config.Gateway reaches the gateway (a short direct-mode
// timeout); a manual Net keeps the node's batch in the mempool until
// SetManual(false) makes it a block; /readyz follows SetReady.
func TestNetSwitches(t *testing.T) {
	n := duettest.New(t, duettest.Config{App: supplychain.App, Actors: demoActors(supplychain.App, 1), Manual: true,
		Gateway: func(c *gateway.Config) { c.DirectTimeout = 50 * time.Millisecond }})
	h := n.Height()
	_, err := supplychain.CreatePackage(context.Background(), n.Client(), n.Signer("supplier-1"), "c-1",
		supplychain.NewPackage{ID: "PKG-1", Destination: "DC", Items: []supplychain.Item{{SKU: "SKU-1", Name: "Widget", Qty: 3}}})
	if ce := (*client.Error)(nil); !errors.As(err, &ce) || ce.Status != http.StatusServiceUnavailable {
		t.Fatalf("direct-mode create with no blocks: got %v, want 503 after the gateway's 50ms", err)
	}
	if got := len(n.Mempool()); got != 1 || n.Height() != h {
		t.Fatalf("manual Net: %d txs in the mempool at height %d; want 1 at %d", got, n.Height(), h)
	}
	n.SetManual(false)
	if got := len(n.Mempool()); got != 0 || n.Height() != h+1 {
		t.Fatalf("after SetManual(false): %d txs in the mempool at height %d; want 0 at %d", got, n.Height(), h+1)
	}
	if f := n.Wait("c-1", "supplier-1"); f.Status != protocol.StatusCommitted || f.Height != h+1 {
		t.Fatalf("create: %+v; want committed at %d", f, h+1)
	}
	for _, ready := range []bool{false, true} {
		n.SetReady(ready)
		rec := httptest.NewRecorder()
		n.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		if want := map[bool]int{false: http.StatusServiceUnavailable, true: http.StatusOK}[ready]; rec.Code != want {
			t.Errorf("/readyz ready %v: got %d %s, want %d", ready, rec.Code, rec.Body, want)
		}
	}
}

func stage(t *testing.T, n *duettest.Net, pkg string) string {
	t.Helper()
	var body struct{ Package supplychain.Package }
	resp := n.Query(supplychain.PathPackages + "/" + pkg)
	if resp.Status != http.StatusOK {
		t.Fatalf("query %s: %d %s", pkg, resp.Status, resp.Body)
	}
	if err := json.Unmarshal(resp.Body, &body); err != nil {
		t.Fatal(err)
	}
	return body.Package.Stage
}

// TestWorkloads runs a few iterations of every registered app's bench
// workload on both layers, as duet bench runs them: the prep ops in
// sessions committed first, then the measured session, committed.
func TestWorkloads(t *testing.T) {
	for _, app := range service.Apps() {
		if app.Workload == nil {
			continue
		}
		t.Run(app.Name, func(t *testing.T) {
			n := duettest.New(t, duettest.Config{App: app, Actors: demoActors(app, 2)})
			ctx := context.Background()
			w := app.Workload
			for i := range 3 {
				it := w.Iteration("t", i)
				for k, op := range it.Prep {
					s := n.Session(fmt.Sprintf("prep-%d-%d", i, k), op.Role+"-1")
					if err := s.Start(ctx, nil); err != nil {
						t.Fatal(err)
					}
					if _, err := s.Do(ctx, op.Method, op.Path, op.BodyFor(s.Signer().ID, s.Signer().Key), nil); err != nil {
						t.Fatalf("iteration %d prep %s: %v", i, op.Name, err)
					}
					if err := s.Commit(ctx); err != nil {
						t.Fatal(err)
					}
					if f := n.Wait(s.ID, op.Role+"-1"); f.Status != protocol.StatusCommitted {
						t.Fatalf("iteration %d prep %s: %+v", i, op.Name, f)
					}
				}
				actor := fmt.Sprintf("%s-%d", w.Role, 1+i%2)
				s := n.Session(fmt.Sprintf("s-%d", i), actor)
				start := it.Start
				if start == nil {
					start = []byte(`{}`)
				}
				if err := s.Start(ctx, start); err != nil {
					t.Fatalf("iteration %d start: %v", i, err)
				}
				for _, op := range it.Steps {
					if _, err := s.Do(ctx, op.Method, op.Path, op.BodyFor(actor, s.Signer().Key), nil); err != nil {
						t.Fatalf("iteration %d %s: %v", i, op.Name, err)
					}
				}
				if err := s.Commit(ctx); err != nil {
					t.Fatal(err)
				}
				if f := n.Wait(s.ID, actor); f.Status != protocol.StatusCommitted {
					t.Fatalf("iteration %d: %+v", i, f)
				}
			}
		})
	}
}
