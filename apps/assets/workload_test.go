package assets_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/duet-bft/duet/apps/assets"
	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service"
	"github.com/duet-bft/duet/service/servicetest"
)

// benchWorld is a world of the demo network's shape: its genesis is
// DemoGenesis, which the workload relies on for its recipe.
func benchWorld(t *testing.T) *world {
	t.Helper()
	ids := map[string]string{"admin-1": service.RoleAdmin, "gamemaster-1": assets.RoleGamemaster,
		"player-1": assets.RolePlayer, "player-2": assets.RolePlayer}
	var actors []service.Actor
	for _, id := range []string{"admin-1", "gamemaster-1", "player-1", "player-2"} {
		actors = append(actors, service.Actor{ID: id, Role: ids[id]})
	}
	return &world{World: servicetest.NewWorld(t, assets.App, ids, assets.DemoGenesis(actors))}
}

// do runs a workload op in s, as its actor signs it; it must succeed.
func do(t *testing.T, s *servicetest.Session, op service.BenchOp) {
	t.Helper()
	body := op.BodyFor(s.Actor.ID, s.Actor.Key)
	if resp := s.Do(op.Method, op.Path, string(body)); !resp.OK() {
		t.Fatalf("%s (%s %s %s) by %s: got %d %s", op.Name, op.Method, op.Path, body, s.Actor.ID, resp.Status, resp.Body)
	}
}

func TestWorkloadShape(t *testing.T) {
	wl := assets.App.Workload
	if wl == nil || wl.Role != assets.RolePlayer {
		t.Fatalf("workload %+v: want one run by %s", wl, assets.RolePlayer)
	}
	it := wl.Iteration("r", 0)
	if n := len(it.Steps); n < 3 || n > 5 {
		t.Errorf("%d steps, want 3-5", n)
	}
	var names []string
	for _, op := range append(slices.Clone(it.Prep), it.Steps...) {
		names = append(names, op.Name)
	}
	slices.Sort(names)
	if len(slices.Compact(names)) != len(it.Prep)+len(it.Steps) {
		t.Errorf("step names %v are not unique", names)
	}
	for _, op := range it.Prep {
		if op.Role != assets.RoleGamemaster {
			t.Errorf("prep op %s has role %q, want %s", op.Name, op.Role, assets.RoleGamemaster)
		}
	}
	// Different runs and iterations never share an id.
	a, b, c := wl.Iteration("r1", 1), wl.Iteration("r1", 2), wl.Iteration("r2", 1)
	if a.Steps[0].Path == b.Steps[0].Path || a.Steps[0].Path == c.Steps[0].Path {
		t.Errorf("iterations share paths: %s, %s, %s", a.Steps[0].Path, b.Steps[0].Path, c.Steps[0].Path)
	}
}

// TestWorkloadL2 runs iterations as duet bench's L2 mode does: each prep
// op in a session of its own, committed, then the player's session.
func TestWorkloadL2(t *testing.T) {
	w := benchWorld(t)
	for i := range 3 {
		it := assets.App.Workload.Iteration("abc123-L", i)
		for k, op := range it.Prep {
			s := w.Open(fmt.Sprintf("prep-%d-%d", i, k), "gamemaster-1", "")
			do(t, s, op)
			s.Commit()
		}
		s := w.Open(fmt.Sprintf("L-%d", i), "player-1", string(it.Start))
		for _, op := range it.Steps {
			do(t, s, op)
		}
		s.Commit()
	}
	var l struct{ Listing assets.Listing }
	w.QueryJSON(assets.PathListings+"/Aabc123-L-2-sword", &l)
	if l.Listing.State != assets.ListingOpen || l.Listing.Seller != "player-1" || l.Listing.Price != assets.BenchPrice {
		t.Fatalf("the last iteration's listing: %+v", l.Listing)
	}
}

// TestWorkloadThroughput runs iterations as the throughput mode does:
// prep ops batched in one session, then many sessions of one player open
// at once on one node. An L2 node refuses (409) an op that reads or
// writes a key another live session writes or claims, so the sessions'
// keys must be disjoint; in particular none may touch the player's wallet.
func TestWorkloadThroughput(t *testing.T) {
	w := benchWorld(t)
	const n = 6
	run := "T123456789-l2-8"
	g := w.Open("prep-0", "gamemaster-1", "")
	for i := range n {
		for _, op := range assets.App.Workload.Iteration(run, i).Prep {
			do(t, g, op)
		}
	}
	g.Commit()
	sessions := make([]*servicetest.Session, n)
	for i := range n {
		sessions[i] = w.Open(fmt.Sprintf("%s-s%d", run, i), "player-1", string(assets.App.Workload.Iteration(run, i).Start))
	}
	// Step k of every session, in turn, as concurrent workers would.
	for k := range assets.App.Workload.Iteration(run, 0).Steps {
		for i, s := range sessions {
			do(t, s, assets.App.Workload.Iteration(run, i).Steps[k])
		}
	}
	held := func(s *servicetest.Session) []string { return append(s.Tx.WriteKeys(), s.Tx.Claims()...) }
	for i, x := range sessions {
		for _, k := range held(x) {
			if strings.HasPrefix(k, "assets/wallet/") {
				t.Errorf("session %d reserves the wallet key %s", i, k)
			}
		}
		for j, y := range sessions {
			if i == j {
				continue
			}
			touched := held(y)
			for _, r := range y.Tx.Reads() {
				touched = append(touched, r.Key)
			}
			for _, k := range held(x) {
				if slices.Contains(touched, k) {
					t.Errorf("session %d holds %s, which session %d touches: one node would refuse it 409", i, k, j)
				}
			}
		}
	}
	for _, s := range sessions {
		s.Commit()
	}
}

// TestWorkloadDirect runs an iteration as direct mode does: every op a
// one-op session, committed before the next. The run and iteration are
// long ones, so the ids are the longest the bench makes.
func TestWorkloadDirect(t *testing.T) {
	w := benchWorld(t)
	run, i := "T999999999-direct-1000", 9_999_999
	it := assets.App.Workload.Iteration(run, i)
	for _, op := range append(slices.Clone(it.Prep), it.Steps...) {
		actor := "player-2"
		if op.Role == assets.RoleGamemaster {
			actor = "gamemaster-1"
		}
		body := op.BodyFor(actor, w.Actor(actor).Key)
		if resp := w.Direct("D-"+op.Name, actor, op.Method, op.Path, string(body)); !resp.OK() {
			t.Fatalf("%s by %s: got %d %s", op.Name, actor, resp.Status, resp.Body)
		}
	}
	for _, seg := range strings.Split(it.Steps[len(it.Steps)-1].Path, "/")[1:] {
		if !protocol.ValidID(seg) {
			t.Errorf("path segment %q is not a valid id", seg)
		}
	}
}
