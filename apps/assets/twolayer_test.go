package assets_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/duet-bft/duet/apps/assets"
	"github.com/duet-bft/duet/client"
	"github.com/duet-bft/duet/duettest"
	"github.com/duet-bft/duet/protocol"
)

// TestBothLayers runs a trade on an L2 node and L1 in one process
// (duettest): a gamemaster mints, a seller lists in a session L1 commits,
// and two buyers race for the listing on the same node. The second buyer
// is refused at its session's start, before any work, while the first
// holds the listing; once the first buy is committed, the listing is sold
// on both layers and the wallets moved on L1.
func TestBothLayers(t *testing.T) {
	n := duettest.New(t, duettest.Config{App: assets.App, Actors: map[string]string{
		"gm-1": assets.RoleGamemaster, "p-1": assets.RolePlayer, "p-2": assets.RolePlayer, "p-3": assets.RolePlayer}})
	ctx := context.Background()
	session := func(id, actor string) assets.Session { return assets.Session{Session: n.Session(id, actor)} }
	commit := func(s assets.Session) {
		t.Helper()
		if err := s.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if f := n.Wait(s.ID, s.Signer().ID); f.Status != protocol.StatusCommitted {
			t.Fatalf("session %s: %+v", s.ID, f)
		}
	}
	must := duettest.MustOK(t, "op")

	mint := session("mint-1", "gm-1")
	must(mint.Mint(ctx, "p-1", []assets.NewItem{{ID: "SWORD-1", Kind: "iron-sword"}}, nil))
	if mint.Seq() != 1 {
		t.Fatal("direct-mode mint did not commit")
	}
	sell := session("sell-1", "p-1")
	if err := sell.Start(ctx, nil); err != nil {
		t.Fatal(err)
	}
	must(sell.List(ctx, "SWORD-1", 100, nil))
	commit(sell)

	a, b := session("buy-a", "p-2"), session("buy-b", "p-3")
	if err := a.Start(ctx, map[string]string{"listing": "SWORD-1"}); err != nil {
		t.Fatal(err)
	}
	var ce *client.Error
	if err := b.Start(ctx, map[string]string{"listing": "SWORD-1"}); !errors.As(err, &ce) || ce.Status != http.StatusConflict || ce.Code != "CONFLICT" {
		t.Fatalf("second buyer's start while the first holds the listing: %v, want 409 CONFLICT", err)
	}
	must(a.Buy(ctx, "SWORD-1", 100, nil))
	commit(a)

	if err := b.Start(ctx, map[string]string{"listing": "SWORD-1"}); !errors.As(err, &ce) || ce.Code != "FAILED_PRECONDITION" {
		t.Fatalf("second buyer's start after the sale: %v, want 409 FAILED_PRECONDITION (sold)", err)
	}
	resp := n.Query("/v1/assets/wallets/p-1")
	if w := decode[struct{ Wallet assets.Wallet }](t, resp.Body); resp.Status != http.StatusOK || w.Wallet.Coins != assets.DemoCoins+100 {
		t.Errorf("seller's wallet on L1: %d %s, want %d coins", resp.Status, resp.Body, assets.DemoCoins+100)
	}
	resp = n.Query("/v1/assets/items/SWORD-1")
	if it := decode[struct{ Item assets.Item }](t, resp.Body); it.Item.Owner != "p-2" {
		t.Errorf("the sword on L1: %s, want owned by p-2", resp.Body)
	}
}
