package assets_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/duet-bft/duet/apps/assets"
	"github.com/duet-bft/duet/service"
	"github.com/duet-bft/duet/service/servicetest"
)

// The test actors. p-3 starts poor.
const (
	adm = "admin-1"
	gm  = "gm-1"
	p1  = "p-1"
	p2  = "p-2"
	p3  = "p-3"
)

var roles = map[string]string{
	adm: service.RoleAdmin,
	gm:  assets.RoleGamemaster,
	p1:  assets.RolePlayer,
	p2:  assets.RolePlayer,
	p3:  assets.RolePlayer,
}

// world is a servicetest.World that numbers its sessions.
type world struct {
	*servicetest.World
	n int
}

func newWorld(t testing.TB, wallets ...assets.Wallet) *world {
	t.Helper()
	if wallets == nil {
		wallets = []assets.Wallet{{Player: p1, Coins: 1000}, {Player: p2, Coins: 1000}, {Player: p3, Coins: 50}}
	}
	g := assets.Genesis{Recipes: assets.DemoRecipes, Wallets: wallets}
	return &world{World: servicetest.NewWorld(t, assets.App, roles, service.MustJSON(g))}
}

func (w *world) id() string {
	w.n++
	return fmt.Sprintf("s-%d", w.n)
}

// post runs one op as a direct-mode session, committed if it succeeds.
func (w *world) post(actor, path, body string) service.Response {
	w.T.Helper()
	return w.Direct(w.id(), actor, http.MethodPost, path, body)
}

// must is post that requires the status want; it returns the body.
func (w *world) must(want int, actor, path, body string) []byte {
	w.T.Helper()
	resp := w.post(actor, path, body)
	if resp.Status != want {
		w.T.Fatalf("%s POST %s %s: got %d %s, want %d", actor, path, body, resp.Status, resp.Body, want)
	}
	return resp.Body
}

// open starts a session of actor with the start body ("" for {}).
func (w *world) open(actor, start string) *servicetest.Session {
	w.T.Helper()
	return w.Open(w.id(), actor, start)
}

// mint mints items of the given kinds (id:kind) to owner ("" for loot).
func (w *world) mint(owner string, idKinds ...string) {
	w.T.Helper()
	var items []assets.NewItem
	for _, ik := range idKinds {
		id, kind, _ := strings.Cut(ik, ":")
		items = append(items, assets.NewItem{ID: id, Kind: kind})
	}
	w.must(http.StatusCreated, gm, assets.PathItems, string(service.MustJSON(assets.MintRequest{Owner: owner, Items: items})))
}

// listed gives seller a held iron sword id listed at price.
func (w *world) listed(seller, id string, price uint64) {
	w.T.Helper()
	w.mint(seller, id+":iron-sword")
	w.must(http.StatusCreated, seller, itemPath(id, "list"), fmt.Sprintf(`{"price":%d}`, price))
}

func (w *world) item(id string) assets.Item {
	w.T.Helper()
	var r struct{ Item assets.Item }
	w.QueryJSON(assets.PathItems+"/"+id, &r)
	return r.Item
}

func (w *world) listing(id string) assets.Listing {
	w.T.Helper()
	var r struct{ Listing assets.Listing }
	w.QueryJSON(assets.PathListings+"/"+id, &r)
	return r.Listing
}

func (w *world) coins(player string) uint64 {
	w.T.Helper()
	var r struct{ Wallet assets.Wallet }
	w.QueryJSON(assets.PathWallets+"/"+player, &r)
	return r.Wallet.Coins
}

func itemPath(id, action string) string    { return assets.PathItems + "/" + id + "/" + action }
func listingPath(id, action string) string { return assets.PathListings + "/" + id + "/" + action }
func craftPath(recipe string) string       { return assets.PathRecipes + "/" + recipe + "/craft" }
func grantPath(player string) string       { return assets.PathWallets + "/" + player + "/grant" }

func wantErr(t *testing.T, what string, resp service.Response, status int, code, msgPart string) {
	t.Helper()
	if resp.Status != status {
		t.Fatalf("%s: got %d %s, want %d %s", what, resp.Status, resp.Body, status, code)
	}
	var e service.ErrorBody
	if err := json.Unmarshal(resp.Body, &e); err != nil {
		t.Fatalf("%s: error body %s: %v", what, resp.Body, err)
	}
	if e.Error.Code != code || !strings.Contains(e.Error.Message, msgPart) {
		t.Fatalf("%s: got %s %q, want %s containing %q", what, e.Error.Code, e.Error.Message, code, msgPart)
	}
}

func decode[T any](t *testing.T, body []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return v
}

// TestTrade is the whole economy in order: loot is minted and claimed, a
// sword crafted and listed, then bought by another player, given away,
// listed, cancelled and listed again.
func TestTrade(t *testing.T) {
	w := newWorld(t)
	w.mint("", "ING-1:iron-ingot", "PLK-1:oak-plank")
	w.mint(p1, "HRB-1:herb", "HRB-2:herb", "WTR-1:water-flask")

	// One session of p-1: claim, claim, craft, list.
	s := w.open(p1, `{"items":["ING-1","PLK-1"]}`)
	if got, want := s.Tx.Claims(), []string{assets.ItemKey("ING-1"), assets.ItemKey("PLK-1")}; !slices.Equal(got, want) {
		t.Fatalf("start claims %v, want %v", got, want)
	}
	claimed := decode[struct{ Item assets.Item }](t, s.Must(http.StatusOK, http.MethodPost, itemPath("ING-1", "claim"), `{}`))
	if claimed.Item.Owner != p1 || claimed.Item.State != assets.StateHeld {
		t.Fatalf("claimed %+v, want held by %s", claimed.Item, p1)
	}
	s.Must(http.StatusOK, http.MethodPost, itemPath("PLK-1", "claim"), ``)
	crafted := decode[struct{ Item assets.Item }](t, s.Must(http.StatusCreated, http.MethodPost, craftPath("iron-sword"),
		`{"inputs":["PLK-1","ING-1"],"output":"SWD-1","name":"Dawnblade"}`))
	want := assets.Item{ID: "SWD-1", Kind: "iron-sword", Name: "Dawnblade", Owner: p1, State: assets.StateHeld,
		CreatedBy: p1, CreatedAt: w.Now, Recipe: "iron-sword", CraftedFrom: []string{"PLK-1", "ING-1"}, UpdatedAt: w.Now}
	if !reflect.DeepEqual(crafted.Item, want) {
		t.Fatalf("crafted\n%+v\nwant\n%+v", crafted.Item, want)
	}
	if got, want := s.Tx.WriteKeys(), []string{assets.ItemKey("ING-1"), assets.ItemKey("PLK-1"), assets.ItemKey("SWD-1")}; !slices.Equal(got, want) {
		t.Fatalf("craft session writes %v, want %v", got, want)
	}
	listing := decode[struct{ Listing assets.Listing }](t, s.Must(http.StatusCreated, http.MethodPost, itemPath("SWD-1", "list"), `{"price":300}`))
	if l := listing.Listing; l.State != assets.ListingOpen || l.Seller != p1 || l.Price != 300 || l.Kind != "iron-sword" {
		t.Fatalf("listing %+v", l)
	}
	s.Commit()
	if it := w.item("ING-1"); it.State != assets.StateConsumed || it.ConsumedInto != "SWD-1" {
		t.Fatalf("input after craft: %+v", it)
	}

	// p-2 buys it: four keys in one op.
	b := w.open(p2, `{"listing":"SWD-1"}`)
	if got, want := b.Tx.Claims(), []string{assets.ListingKey("SWD-1")}; !slices.Equal(got, want) {
		t.Fatalf("buyer's claims %v, want %v", got, want)
	}
	p := decode[assets.Purchase](t, b.Must(http.StatusOK, http.MethodPost, listingPath("SWD-1", "buy"), `{"price":300}`))
	if p.Listing.State != assets.ListingSold || p.Listing.Buyer != p2 || p.Item.Owner != p2 || p.Item.State != assets.StateHeld || p.Wallet.Coins != 700 {
		t.Fatalf("purchase %+v %+v %+v", p.Listing, p.Item, p.Wallet)
	}
	if got, want := b.Tx.WriteKeys(), []string{assets.ItemKey("SWD-1"), assets.ListingKey("SWD-1"), assets.WalletKey(p1), assets.WalletKey(p2)}; !slices.Equal(got, want) {
		t.Fatalf("buy writes %v, want %v", got, want)
	}
	b.Commit()
	if got := [2]uint64{w.coins(p1), w.coins(p2)}; got != [2]uint64{1300, 700} {
		t.Fatalf("coins of p-1, p-2: got %v, want [1300 700]", got)
	}
	if l := w.listing("SWD-1"); l.State != assets.ListingSold || l.Buyer != p2 || l.ClosedAt == 0 {
		t.Fatalf("listing after sale: %+v", l)
	}

	// p-2 gives it to p-3, who lists it, cancels, and lists it again.
	if it := decode[struct{ Item assets.Item }](t, w.must(http.StatusOK, p2, itemPath("SWD-1", "transfer"), `{"to":"p-3"}`)); it.Item.Owner != p3 {
		t.Fatalf("after transfer: %+v", it.Item)
	}
	w.must(http.StatusCreated, p3, itemPath("SWD-1", "list"), `{"price":10}`)
	if l := decode[struct{ Listing assets.Listing }](t, w.must(http.StatusOK, p3, listingPath("SWD-1", "cancel"), ``)); l.Listing.State != assets.ListingCancelled {
		t.Fatalf("after cancel: %+v", l.Listing)
	}
	if it := w.item("SWD-1"); it.State != assets.StateHeld {
		t.Fatalf("item after cancel: %+v", it)
	}
	w.must(http.StatusCreated, p3, itemPath("SWD-1", "list"), `{"price":20}`)
	if l := w.listing("SWD-1"); l.State != assets.ListingOpen || l.Seller != p3 || l.Price != 20 || l.Buyer != "" {
		t.Fatalf("listed again: %+v", l)
	}

	// A recipe of several units of one kind, with items minted to p-1.
	w.must(http.StatusCreated, p1, craftPath("health-potion"), `{"inputs":["WTR-1","HRB-2","HRB-1"],"output":"POT-1"}`)
	if it := w.item("POT-1"); it.Kind != "health-potion" || it.Owner != p1 {
		t.Fatalf("potion %+v", it)
	}
}

// TestGamemaster: recipes, mints and grants.
func TestGamemaster(t *testing.T) {
	w := newWorld(t)
	body := w.must(http.StatusCreated, gm, assets.PathRecipes,
		`{"id":"bow","inputs":[{"kind":"string","qty":1},{"kind":"oak-plank","qty":2}],"output":"bow"}`)
	r := decode[struct{ Recipe assets.Recipe }](t, body).Recipe
	want := assets.Recipe{RecipeSpec: assets.RecipeSpec{ID: "bow", Output: "bow",
		Inputs: []assets.Ingredient{{Kind: "oak-plank", Qty: 2}, {Kind: "string", Qty: 1}}}, DefinedBy: gm, DefinedAt: w.Now}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("recipe %+v, want %+v (inputs sorted by kind)", r, want)
	}
	var q struct{ Recipe assets.Recipe }
	w.QueryJSON(assets.PathRecipes+"/bow", &q)
	if !reflect.DeepEqual(q.Recipe, want) {
		t.Fatalf("query: recipe %+v, want %+v", q.Recipe, want)
	}

	items := decode[struct{ Items []assets.Item }](t, w.must(http.StatusCreated, gm, assets.PathItems,
		`{"owner":"p-2","items":[{"id":"B","kind":"gem","name":"Blue gem"},{"id":"A","kind":"gem"}]}`)).Items
	if len(items) != 2 || items[0].ID != "B" || items[1].ID != "A" || items[0].Name != "Blue gem" ||
		items[0].Owner != p2 || items[0].State != assets.StateHeld || items[0].CreatedBy != gm {
		t.Fatalf("minted %+v", items)
	}
	loot := decode[struct{ Items []assets.Item }](t, w.must(http.StatusCreated, gm, assets.PathItems, `{"items":[{"id":"C","kind":"gem"}]}`)).Items
	if loot[0].Owner != "" || loot[0].State != assets.StateLoot {
		t.Fatalf("loot %+v", loot[0])
	}

	wal := decode[struct{ Wallet assets.Wallet }](t, w.must(http.StatusOK, gm, grantPath(p3), `{"amount":25}`)).Wallet
	if wal != (assets.Wallet{Player: p3, Coins: 75}) {
		t.Fatalf("wallet after grant %+v", wal)
	}
}

// TestRoles: each route refuses the roles it is not for, in the
// framework's words, before the handler runs.
func TestRoles(t *testing.T) {
	w := newWorld(t)
	w.mint(p1, "X:iron-ingot")
	gmRoutes := []struct{ path, body string }{
		{assets.PathRecipes, `{"id":"r","inputs":[{"kind":"a","qty":1}],"output":"b"}`},
		{assets.PathItems, `{"items":[{"id":"Y","kind":"k"}]}`},
		{grantPath(p1), `{"amount":1}`},
	}
	playerRoutes := []struct{ path, body string }{
		{itemPath("X", "claim"), `{}`},
		{itemPath("X", "transfer"), `{"to":"p-2"}`},
		{itemPath("X", "list"), `{"price":1}`},
		{craftPath("iron-sword"), `{"inputs":["X"],"output":"Z"}`},
		{listingPath("X", "buy"), `{"price":1}`},
		{listingPath("X", "cancel"), `{}`},
	}
	for _, r := range gmRoutes {
		for _, actor := range []string{adm, p1} {
			wantErr(t, actor+" "+r.path, w.post(actor, r.path, r.body), http.StatusForbidden, "PERMISSION_DENIED", "needs gamemaster")
		}
	}
	for _, r := range playerRoutes {
		for _, actor := range []string{adm, gm} {
			wantErr(t, actor+" "+r.path, w.post(actor, r.path, r.body), http.StatusForbidden, "PERMISSION_DENIED", "needs player")
		}
	}
}

// TestMalformed: a body that is not the route's JSON is 400 MALFORMED.
func TestMalformed(t *testing.T) {
	w := newWorld(t)
	w.mint(p1, "X:iron-ingot")
	w.listed(p2, "L", 5)
	cases := []struct{ actor, path, body string }{
		{gm, assets.PathRecipes, `{"id":"r","inputs":[],"output":"b","extra":1}`},
		{gm, assets.PathRecipes, `{"id":"r","inputs":[{"kind":"a","qty":"1"}],"output":"b"}`},
		{gm, assets.PathItems, ``},
		{gm, assets.PathItems, `{"items":[{"id":"Y","kind":"k","owner":"p-1"}]}`},
		{gm, grantPath(p1), `{"amount":-5}`},
		{gm, grantPath(p1), `{"amount":1e3}`},
		{p1, itemPath("X", "claim"), `{"please":true}`},
		{p1, itemPath("X", "transfer"), `{"to":"p-2"} {}`},
		{p1, itemPath("X", "list"), `{"price":-1}`},
		{p1, itemPath("X", "list"), `[1]`},
		{p1, craftPath("iron-sword"), `{"inputs":"X","output":"Z"}`},
		{p1, listingPath("L", "buy"), `{"price":5`},
		{p2, listingPath("L", "cancel"), `{"why":"changed my mind"}`},
	}
	for _, c := range cases {
		wantErr(t, c.path+" "+c.body, w.post(c.actor, c.path, c.body), http.StatusBadRequest, "MALFORMED", "")
	}
}

// TestInvalid: well-formed bodies with values out of range are 400
// INVALID_ARGUMENT.
func TestInvalid(t *testing.T) {
	w := newWorld(t)
	w.mint(p1, "ING:iron-ingot", "HRB:herb", "PLK:oak-plank")
	w.listed(p2, "L", 5)
	many := func(n int, f func(i int) string) string {
		s := make([]string, n)
		for i := range s {
			s[i] = f(i)
		}
		return strings.Join(s, ",")
	}
	cases := []struct{ actor, path, body, msg string }{
		{gm, assets.PathRecipes, `{"id":"no spaces","inputs":[{"kind":"a","qty":1}],"output":"b"}`, "recipe id"},
		{gm, assets.PathRecipes, `{"id":"r","inputs":[{"kind":"a","qty":1}],"output":""}`, "output"},
		{gm, assets.PathRecipes, `{"id":"r","inputs":[],"output":"b"}`, "1-16 ingredients"},
		{gm, assets.PathRecipes, `{"id":"r","inputs":[{"kind":"a","qty":0}],"output":"b"}`, "qty must be 1-16"},
		{gm, assets.PathRecipes, `{"id":"r","inputs":[{"kind":"a","qty":17}],"output":"b"}`, "qty must be 1-16"},
		{gm, assets.PathRecipes, `{"id":"r","inputs":[{"kind":"a","qty":1},{"kind":"a","qty":1}],"output":"b"}`, "listed twice"},
		{gm, assets.PathRecipes, `{"id":"r","inputs":[{"kind":"a","qty":9},{"kind":"b","qty":8}],"output":"b"}`, "at most 16 items"},
		{gm, assets.PathItems, `{"items":[]}`, "1-64 items"},
		{gm, assets.PathItems, `{"items":[` + many(65, func(i int) string { return fmt.Sprintf(`{"id":"N%d","kind":"k"}`, i) }) + `]}`, "1-64 items"},
		{gm, assets.PathItems, `{"items":[{"id":"a/b","kind":"k"}]}`, "items[0].id"},
		{gm, assets.PathItems, `{"items":[{"id":"N","kind":"k"},{"id":"N","kind":"k"}]}`, "listed twice"},
		{gm, assets.PathItems, `{"items":[{"id":"N","kind":""}]}`, "items[0].kind"},
		{gm, assets.PathItems, `{"items":[{"id":"N","kind":"k","name":"` + strings.Repeat("x", 129) + `"}]}`, "at most 128 bytes"},
		{gm, assets.PathItems, `{"items":[{"id":"N","kind":"k","name":"two\nlines"}]}`, "control characters"},
		{gm, assets.PathItems, `{"owner":"gm-1","items":[{"id":"N","kind":"k"}]}`, `role "gamemaster"`},
		{gm, assets.PathItems, `{"owner":"a b","items":[{"id":"N","kind":"k"}]}`, "owner"},
		{gm, grantPath(p1), `{}`, "amount is required"},
		{gm, grantPath(p1), `{"amount":0}`, "1-1000000000000"},
		{gm, grantPath(p1), `{"amount":1000000000001}`, "1-1000000000000"},
		{gm, grantPath(gm), `{"amount":1}`, `role "gamemaster"`},
		{gm, grantPath("a!b"), `{"amount":1}`, "player"},
		{p1, itemPath("ING", "transfer"), `{}`, "to"},
		{p1, itemPath("ING", "transfer"), `{"to":"p-1"}`, "another player"},
		{p1, itemPath("ING", "transfer"), `{"to":"gm-1"}`, `role "gamemaster"`},
		{p1, itemPath("a!b", "transfer"), `{"to":"p-2"}`, "item id"},
		{p1, itemPath("ING", "list"), `{}`, "price is required"},
		{p1, itemPath("ING", "list"), `{"price":0}`, "1-1000000000000"},
		{p1, itemPath("ING", "list"), `{"price":1000000000001}`, "1-1000000000000"},
		{p1, craftPath("iron-sword"), `{"inputs":[],"output":"Z"}`, "1-16 ids"},
		{p1, craftPath("iron-sword"), `{"inputs":[` + many(17, func(i int) string { return fmt.Sprintf(`"I%d"`, i) }) + `],"output":"Z"}`, "1-16 ids"},
		{p1, craftPath("iron-sword"), `{"inputs":["ING","ING"],"output":"Z"}`, "named twice"},
		{p1, craftPath("iron-sword"), `{"inputs":["ING","PLK"],"output":""}`, "output"},
		{p1, craftPath("iron-sword"), `{"inputs":["ING","PLK"],"output":"Z","name":"\u0007"}`, "control characters"},
		{p1, craftPath("iron-sword"), `{"inputs":["ING","HRB"],"output":"Z"}`, "recipe iron-sword takes 1 iron-ingot, 1 oak-plank; the inputs are 1 herb, 1 iron-ingot"},
		{p1, craftPath("iron-sword"), `{"inputs":["ING"],"output":"Z"}`, "the inputs are 1 iron-ingot"},
		{p1, craftPath("no such"), `{"inputs":["ING"],"output":"Z"}`, "recipe id"},
		{p1, listingPath("L", "buy"), `{}`, "price is required"},
		{p1, listingPath("L", "buy"), `{"price":0}`, "1-1000000000000"},
		{p1, listingPath("a!b", "cancel"), `{}`, "listing id"},
	}
	for _, c := range cases {
		wantErr(t, c.path+" "+c.body, w.post(c.actor, c.path, c.body), http.StatusBadRequest, "INVALID_ARGUMENT", c.msg)
	}
}

// TestNotFound: a route about a record that does not exist is 404.
func TestNotFound(t *testing.T) {
	w := newWorld(t)
	w.mint(p1, "ING:iron-ingot", "PLK:oak-plank")
	cases := []struct{ actor, path, body, msg string }{
		{p1, itemPath("NOPE", "claim"), `{}`, "item NOPE not found"},
		{p1, itemPath("NOPE", "transfer"), `{"to":"p-2"}`, "item NOPE not found"},
		{p1, itemPath("ING", "transfer"), `{"to":"p-9"}`, "player p-9 not found"},
		{p1, itemPath("NOPE", "list"), `{"price":3}`, "item NOPE not found"},
		{p1, craftPath("nope"), `{"inputs":["ING","PLK"],"output":"Z"}`, "recipe nope not found"},
		{p1, craftPath("iron-sword"), `{"inputs":["ING","NOPE"],"output":"Z"}`, "item NOPE not found"},
		{p1, listingPath("NOPE", "buy"), `{"price":3}`, "listing NOPE not found"},
		{p1, listingPath("ING", "cancel"), `{}`, "listing ING not found"},
		{gm, grantPath("p-9"), `{"amount":3}`, "player p-9 not found"},
		{gm, assets.PathItems, `{"owner":"p-9","items":[{"id":"N","kind":"k"}]}`, "player p-9 not found"},
	}
	for _, c := range cases {
		wantErr(t, c.path+" "+c.body, w.post(c.actor, c.path, c.body), http.StatusNotFound, "NOT_FOUND", c.msg)
	}
	wantErr(t, "no route", w.post(p1, "/v1/assets/nowhere", `{}`), http.StatusNotFound, "NOT_FOUND", "no route")
	wantErr(t, "GET-only path", w.post(p1, assets.PathItems+"/ING", `{}`), http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "")
}

// TestNotOwner: a player acting on another player's item or listing is
// 403 PERMISSION_DENIED.
func TestNotOwner(t *testing.T) {
	w := newWorld(t)
	w.mint(p2, "ING:iron-ingot")
	w.mint(p1, "PLK:oak-plank")
	w.listed(p2, "L", 5)
	cases := []struct{ actor, path, body, msg string }{
		{p1, itemPath("ING", "transfer"), `{"to":"p-3"}`, "item ING belongs to p-2"},
		{p1, itemPath("ING", "list"), `{"price":3}`, "item ING belongs to p-2"},
		{p1, craftPath("iron-sword"), `{"inputs":["ING","PLK"],"output":"Z"}`, "item ING belongs to p-2"},
		{p1, listingPath("L", "cancel"), `{}`, "listing L is p-2's"},
		{p2, listingPath("L", "buy"), `{"price":5}`, "your own"},
	}
	for _, c := range cases {
		wantErr(t, c.path+" "+c.body, w.post(c.actor, c.path, c.body), http.StatusForbidden, "PERMISSION_DENIED", c.msg)
	}
}

// TestPreconditions: requests the state does not allow are 409
// FAILED_PRECONDITION, and change nothing.
func TestPreconditions(t *testing.T) {
	w := newWorld(t)
	w.mint("", "LOOT:iron-ingot")
	w.mint(p1, "ING:iron-ingot", "PLK:oak-plank")
	w.listed(p1, "L", 300)
	cases := []struct{ actor, path, body, msg string }{
		{p3, listingPath("L", "buy"), `{"price":300}`, "insufficient coins: wallet of p-3 holds 50, listing L costs 300"},
		{p2, listingPath("L", "buy"), `{"price":299}`, "listing L costs 300 coins, not 299"},
		{p2, itemPath("ING", "claim"), `{}`, "item ING is not unclaimed loot: p-1 owns it"},
		{p1, craftPath("iron-sword"), `{"inputs":["LOOT","PLK"],"output":"Z"}`, "item LOOT is unclaimed loot: claim it first"},
		{p1, itemPath("LOOT", "transfer"), `{"to":"p-2"}`, "claim it first"},
		{p1, itemPath("L", "transfer"), `{"to":"p-2"}`, "item L is listed for sale: cancel the listing first"},
		{p1, itemPath("L", "list"), `{"price":1}`, "item L is listed"},
	}
	for _, c := range cases {
		h := w.Height
		wantErr(t, c.path+" "+c.body, w.post(c.actor, c.path, c.body), http.StatusConflict, "FAILED_PRECONDITION", c.msg)
		if w.Height != h {
			t.Fatalf("%s: a refused op committed", c.path)
		}
	}
	if got := w.coins(p3); got != 50 {
		t.Fatalf("p-3 holds %d coins after a refused buy, want 50", got)
	}
	w.must(http.StatusOK, p1, listingPath("L", "cancel"), `{}`)
	wantErr(t, "cancel twice", w.post(p1, listingPath("L", "cancel"), `{}`), http.StatusConflict, "FAILED_PRECONDITION", "listing L is cancelled")
	wantErr(t, "buy cancelled", w.post(p2, listingPath("L", "buy"), `{"price":300}`), http.StatusConflict, "FAILED_PRECONDITION", "listing L is cancelled")
}

// TestCoinLimits: no wallet passes MaxBalance, by a grant or by a sale.
func TestCoinLimits(t *testing.T) {
	w := newWorld(t, assets.Wallet{Player: p1, Coins: assets.MaxBalance - 5}, assets.Wallet{Player: p2, Coins: 100})
	w.must(http.StatusOK, gm, grantPath(p1), `{"amount":5}`)
	wantErr(t, "grant over the limit", w.post(gm, grantPath(p1), `{"amount":1}`), http.StatusConflict, "FAILED_PRECONDITION", "limit of 1000000000000000")
	w.listed(p1, "L", 10)
	wantErr(t, "sale over the seller's limit", w.post(p2, listingPath("L", "buy"), `{"price":10}`), http.StatusConflict, "FAILED_PRECONDITION", "wallet of seller p-1")
	if got := w.coins(p2); got != 100 {
		t.Fatalf("buyer holds %d after a refused buy, want 100", got)
	}
}

// TestDoubleSpend: an item is consumed, claimed or sold once.
func TestDoubleSpend(t *testing.T) {
	w := newWorld(t)
	w.mint(p1, "ING:iron-ingot", "ING2:iron-ingot", "PLK:oak-plank", "PLK2:oak-plank")
	w.mint("", "LOOT:herb")

	// Within one session: its own writes say the ingot is gone.
	s := w.open(p1, "")
	s.Must(http.StatusCreated, http.MethodPost, craftPath("iron-sword"), `{"inputs":["ING","PLK"],"output":"S1"}`)
	wantErr(t, "craft with a consumed input", s.Do(http.MethodPost, craftPath("iron-sword"), `{"inputs":["ING","PLK2"],"output":"S2"}`),
		http.StatusConflict, "FAILED_PRECONDITION", "item ING was consumed crafting S1")
	wantErr(t, "output id taken", s.Do(http.MethodPost, craftPath("iron-sword"), `{"inputs":["ING2","PLK2"],"output":"S1"}`),
		http.StatusConflict, "CONFLICT", "item S1 already exists")
	s.Commit()
	wantErr(t, "list a consumed item", w.post(p1, itemPath("ING", "list"), `{"price":1}`), http.StatusConflict, "FAILED_PRECONDITION", "consumed")

	// Loot goes to the first claim.
	w.must(http.StatusOK, p2, itemPath("LOOT", "claim"), `{}`)
	wantErr(t, "second claim", w.post(p3, itemPath("LOOT", "claim"), `{}`), http.StatusConflict, "FAILED_PRECONDITION", "p-2 owns it")

	// A listing sells once.
	w.must(http.StatusCreated, p1, itemPath("S1", "list"), `{"price":40}`)
	w.must(http.StatusOK, p2, listingPath("S1", "buy"), `{"price":40}`)
	wantErr(t, "second buy", w.post(p3, listingPath("S1", "buy"), `{"price":40}`), http.StatusConflict, "FAILED_PRECONDITION", "listing S1 is sold (to p-2)")
	wantErr(t, "seller cancels a sold listing", w.post(p1, listingPath("S1", "cancel"), `{}`), http.StatusConflict, "FAILED_PRECONDITION", "is sold")
	if got := [3]uint64{w.coins(p1), w.coins(p2), w.coins(p3)}; got != [3]uint64{1040, 960, 50} {
		t.Fatalf("coins %v, want [1040 960 50]", got)
	}

	// Nothing is created twice.
	wantErr(t, "mint an existing id", w.post(gm, assets.PathItems, `{"items":[{"id":"NEW","kind":"k"},{"id":"ING","kind":"k"}]}`),
		http.StatusConflict, "CONFLICT", "item ING already exists")
	if resp := w.Query(assets.PathItems + "/NEW"); resp.Status != http.StatusNotFound {
		t.Fatalf("a refused mint created its first item: %d %s", resp.Status, resp.Body)
	}
	wantErr(t, "recipe twice", w.post(gm, assets.PathRecipes, `{"id":"iron-sword","inputs":[{"kind":"a","qty":1}],"output":"b"}`),
		http.StatusConflict, "CONFLICT", "recipe iron-sword already exists")
}

// TestBuyRace: two players race to buy one item. On one L2 node the
// loser never gets that far: the winner's start claimed the listing, so
// the loser's start (or any op reading the listing) gets 409 CONFLICT from
// the node, which servicetest does not model. On two nodes both sessions
// run; L1 applies the first, and the second's read of the listing is
// stale, so L1 rejects it as CONFLICT, and its re-execution on the new
// state refuses the buy. This test shows both halves on one state.
func TestBuyRace(t *testing.T) {
	w := newWorld(t)
	w.listed(p1, "HOT", 40)

	a := w.open(p2, `{"listing":"HOT"}`)
	b := w.open(p3, `{"listing":"HOT"}`) // on another node: no reservation sees a's claim
	for _, s := range []*servicetest.Session{a, b} {
		if got := s.Tx.Claims(); !slices.Equal(got, []string{assets.ListingKey("HOT")}) {
			t.Fatalf("%s claims %v, want the listing", s.Actor.ID, got)
		}
	}
	a.Must(http.StatusOK, http.MethodPost, listingPath("HOT", "buy"), `{"price":40}`)
	a.Commit()

	// b read the listing before a committed: what L1 checks.
	seen := readVersion(t, b.Tx, assets.ListingKey("HOT"))
	if now := w.Store[assets.ListingKey("HOT")].Version; now == seen {
		t.Fatalf("listing version %d unchanged by the sale", now)
	}

	// Re-executed on the committed state (what the losing node does
	// after L1's CONFLICT), b's ops are refused: the start, and the buy.
	wantErr(t, "loser's start", w.Session(w.id(), p3).Do(http.MethodPost, service.PathSessions, `{"listing":"HOT"}`),
		http.StatusConflict, "FAILED_PRECONDITION", "listing HOT is sold (to p-2)")
	wantErr(t, "loser's buy", w.post(p3, listingPath("HOT", "buy"), `{"price":40}`),
		http.StatusConflict, "FAILED_PRECONDITION", "listing HOT is sold (to p-2)")
	if it := w.item("HOT"); it.Owner != p2 {
		t.Fatalf("HOT is owned by %s, want the winner %s", it.Owner, p2)
	}
}

func readVersion(t *testing.T, tx *service.Tx, key string) uint64 {
	t.Helper()
	for _, r := range tx.Reads() {
		if r.Key == key {
			return r.Version
		}
	}
	t.Fatalf("%s is not in the read set %v", key, tx.Reads())
	return 0
}

// TestDependsOnCommitted: a player works only with what a gamemaster's
// session committed. Before the mint commits, the loot does not exist for
// anyone else (on the gamemaster's own L2 node, the key is reserved by the
// open mint session, and a claim gets 409 CONFLICT instead).
func TestDependsOnCommitted(t *testing.T) {
	w := newWorld(t)
	g := w.open(gm, "")
	g.Must(http.StatusCreated, http.MethodPost, assets.PathItems, `{"items":[{"id":"DROP","kind":"herb"}]}`)
	wantErr(t, "claim before the mint commits", w.post(p1, itemPath("DROP", "claim"), `{}`), http.StatusNotFound, "NOT_FOUND", "item DROP not found")
	wantErr(t, "claim at start", w.Session(w.id(), p1).Do(http.MethodPost, service.PathSessions, `{"items":["DROP"]}`),
		http.StatusNotFound, "NOT_FOUND", "item DROP not found")
	g.Commit()
	w.must(http.StatusOK, p1, itemPath("DROP", "claim"), `{}`)

	// The same for a listing: a buyer sees it once the seller's session commits.
	w.mint(p1, "SELL:gem")
	s := w.open(p1, "")
	s.Must(http.StatusCreated, http.MethodPost, itemPath("SELL", "list"), `{"price":7}`)
	wantErr(t, "buy before the listing commits", w.post(p2, listingPath("SELL", "buy"), `{"price":7}`), http.StatusNotFound, "NOT_FOUND", "listing SELL not found")
	s.Commit()
	w.must(http.StatusOK, p2, listingPath("SELL", "buy"), `{"price":7}`)
}

// TestStartClaims: a session start claims a listing or items only for a
// player, only what exists, and only what the player may act on.
func TestStartClaims(t *testing.T) {
	w := newWorld(t)
	w.mint(p1, "MINE:gem", "GONE1:iron-ingot", "GONE2:oak-plank")
	w.mint(p2, "THEIRS:gem")
	w.mint("", "LOOT:gem")
	w.listed(p2, "L", 5)
	w.listed(p2, "SOLD", 5)
	w.must(http.StatusOK, p1, listingPath("SOLD", "buy"), `{"price":5}`)
	w.must(http.StatusCreated, p1, craftPath("iron-sword"), `{"inputs":["GONE1","GONE2"],"output":"SW"}`)
	tests := []struct {
		actor, body string
		status      int
		code        string
		claims      []string
	}{
		{p1, `{"listing":"L"}`, http.StatusCreated, "", []string{assets.ListingKey("L")}},
		{p2, `{"listing":"L"}`, http.StatusCreated, "", []string{assets.ListingKey("L")}}, // the seller, to cancel
		{p1, `{"items":["MINE","LOOT"]}`, http.StatusCreated, "", []string{assets.ItemKey("MINE"), assets.ItemKey("LOOT")}},
		{p1, `{"listing":"L","items":["MINE"]}`, http.StatusCreated, "", []string{assets.ListingKey("L"), assets.ItemKey("MINE")}},
		{p1, `{}`, http.StatusCreated, "", nil},
		{p1, ``, http.StatusCreated, "", nil},
		{gm, `{"note":"event"}`, http.StatusCreated, "", nil},
		{gm, `{"listing":"L"}`, http.StatusForbidden, "PERMISSION_DENIED", nil},
		{adm, `{"items":["MINE"]}`, http.StatusForbidden, "PERMISSION_DENIED", nil},
		{p1, `{"items":["THEIRS"]}`, http.StatusForbidden, "PERMISSION_DENIED", nil},
		{p1, `{"listing":"NOPE"}`, http.StatusNotFound, "NOT_FOUND", nil},
		{p1, `{"items":["MINE","NOPE"]}`, http.StatusNotFound, "NOT_FOUND", nil},
		{p3, `{"listing":"SOLD"}`, http.StatusConflict, "FAILED_PRECONDITION", nil},
		{p1, `{"items":["GONE1"]}`, http.StatusConflict, "FAILED_PRECONDITION", nil},
		{p1, `{"listing":7}`, http.StatusBadRequest, "INVALID_ARGUMENT", nil},
		{p1, `{"listing":"no spaces"}`, http.StatusBadRequest, "INVALID_ARGUMENT", nil},
		{p1, `{"items":"MINE"}`, http.StatusBadRequest, "INVALID_ARGUMENT", nil},
		{p1, `{"items":[]}`, http.StatusBadRequest, "INVALID_ARGUMENT", nil},
		{p1, `{"items":["MINE","MINE"]}`, http.StatusBadRequest, "INVALID_ARGUMENT", nil},
		{p1, `{"items":[` + strings.Repeat(`"MINE",`, 16) + `"MINE"]}`, http.StatusBadRequest, "INVALID_ARGUMENT", nil},
	}
	for _, tt := range tests {
		s := w.Session(w.id(), tt.actor)
		resp := s.Do(http.MethodPost, service.PathSessions, tt.body)
		if tt.code == "" {
			if resp.Status != tt.status {
				t.Fatalf("%s %s: got %d %s, want %d", tt.actor, tt.body, resp.Status, resp.Body, tt.status)
			}
		} else {
			wantErr(t, tt.actor+" "+tt.body, resp, tt.status, tt.code, "")
		}
		if got := s.Tx.Claims(); !slices.Equal(got, tt.claims) {
			t.Errorf("%s %s: claims %v, want %v", tt.actor, tt.body, got, tt.claims)
		}
	}
}

// TestQueries: the GET routes, on committed state.
func TestQueries(t *testing.T) {
	w := newWorld(t, assets.Wallet{Player: p1, Coins: 9})
	w.listed(p1, "L", 5)
	for _, q := range []struct {
		path   string
		status int
		body   string
	}{
		{assets.PathWallets + "/p-1", http.StatusOK, `{"wallet":{"player":"p-1","coins":9}}`},
		{assets.PathWallets + "/p-2", http.StatusOK, `{"wallet":{"player":"p-2","coins":0}}`},
		{assets.PathRecipes + "/health-potion", http.StatusOK,
			`{"recipe":{"id":"health-potion","inputs":[{"kind":"herb","qty":2},{"kind":"water-flask","qty":1}],"output":"health-potion"}}`},
		{assets.PathListings + "/L", http.StatusOK,
			fmt.Sprintf(`{"listing":{"item":"L","kind":"iron-sword","seller":"p-1","price":5,"state":"open","listed_at":%d}}`, w.Now)},
		{assets.PathItems + "/L", http.StatusOK,
			fmt.Sprintf(`{"item":{"id":"L","kind":"iron-sword","owner":"p-1","state":"listed","created_by":"gm-1","created_at":%d,"updated_at":%d}}`, w.Now-1000, w.Now)},
	} {
		if resp := w.Query(q.path); resp.Status != q.status || string(resp.Body) != q.body {
			t.Errorf("GET %s: got %d %s\nwant %d %s", q.path, resp.Status, resp.Body, q.status, q.body)
		}
	}
	for _, q := range []struct {
		path   string
		status int
		code   string
	}{
		{assets.PathWallets + "/p-9", http.StatusNotFound, "NOT_FOUND"},
		{assets.PathWallets + "/gm-1", http.StatusBadRequest, "INVALID_ARGUMENT"},
		{assets.PathWallets + "/a!b", http.StatusBadRequest, "INVALID_ARGUMENT"},
		{assets.PathItems + "/NOPE", http.StatusNotFound, "NOT_FOUND"},
		{assets.PathItems + "/" + strings.Repeat("x", 65), http.StatusBadRequest, "INVALID_ARGUMENT"},
		{assets.PathListings + "/NOPE", http.StatusNotFound, "NOT_FOUND"},
		{assets.PathRecipes + "/nope", http.StatusNotFound, "NOT_FOUND"},
		{assets.PathRecipes + "/a!b", http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"/v1/assets/nowhere", http.StatusNotFound, "NOT_FOUND"},
	} {
		wantErr(t, "GET "+q.path, w.Query(q.path), q.status, q.code, "")
	}
}

// TestFailedOpWritesNothing: a refused op leaves its session as it was
// (reads, writes, claims) and the session goes on.
func TestFailedOpWritesNothing(t *testing.T) {
	w := newWorld(t)
	w.mint("", "LOOT:iron-ingot")
	w.mint(p1, "PLK:oak-plank", "HRB:herb")
	w.listed(p2, "L", 2000)
	s := w.open(p1, `{"items":["LOOT"]}`)
	s.Must(http.StatusOK, http.MethodPost, itemPath("LOOT", "claim"), `{}`)
	failing := []struct {
		path, body string
		status     int
	}{
		{craftPath("iron-sword"), `{"inputs":["LOOT","HRB"],"output":"Z"}`, http.StatusBadRequest}, // wrong kinds, after reading both
		{craftPath("iron-sword"), `{"inputs":["LOOT","PLK"],"output":"PLK"}`, http.StatusConflict}, // output taken, after the checks
		{listingPath("L", "buy"), `{"price":2000}`, http.StatusConflict},                           // insufficient coins
		{assets.PathItems, `{"items":[{"id":"N","kind":"k"}]}`, http.StatusForbidden},              // wrong role
		{itemPath("LOOT", "claim"), `{}`, http.StatusConflict},                                     // already ours
		{itemPath("NOPE", "transfer"), `{"to":"p-2"}`, http.StatusNotFound},                        // unknown item
		{itemPath("HRB", "list"), `{"price":"1"}`, http.StatusBadRequest},                          // malformed
	}
	for _, f := range failing {
		reads, writes, claims, seq := s.Tx.Reads(), s.Tx.Writes(), s.Tx.Claims(), s.Seq
		if resp := s.Do(http.MethodPost, f.path, f.body); resp.Status != f.status {
			t.Fatalf("%s %s: got %d %s, want %d", f.path, f.body, resp.Status, resp.Body, f.status)
		}
		if !reflect.DeepEqual(s.Tx.Reads(), reads) || !reflect.DeepEqual(s.Tx.Writes(), writes) ||
			!slices.Equal(s.Tx.Claims(), claims) || s.Seq != seq {
			t.Fatalf("%s %s: the refused op changed the session", f.path, f.body)
		}
	}
	s.Must(http.StatusCreated, http.MethodPost, craftPath("iron-sword"), `{"inputs":["LOOT","PLK"],"output":"Z"}`)
	s.Commit()
	if it := w.item("Z"); it.Owner != p1 {
		t.Fatalf("crafted %+v", it)
	}
}

// transcript runs a fixed sequence of ops, refusals included, in a fresh
// world and returns every answer, the write set of each session and the
// final state.
func transcript(t *testing.T) (resps []service.Response, writes [][]service.KV, final servicetest.Store) {
	w := newWorld(t)
	run := func(s *servicetest.Session, path, body string) {
		resps = append(resps, s.Do(http.MethodPost, path, body))
	}
	g := w.open(gm, "")
	run(g, assets.PathItems, `{"items":[{"id":"I1","kind":"iron-ingot"},{"id":"P1","kind":"oak-plank"}]}`)
	run(g, assets.PathItems, `{"owner":"p-2","items":[{"id":"I1","kind":"iron-ingot"}]}`)
	run(g, assets.PathRecipes, `{"id":"axe","inputs":[{"kind":"oak-plank","qty":1},{"kind":"iron-ingot","qty":1}],"output":"axe"}`)
	run(g, grantPath(p3), `{"amount":500}`)
	writes = append(writes, g.Tx.Writes())
	g.Commit()
	p := w.open(p1, `{"items":["I1","P1"]}`)
	for _, o := range []struct{ path, body string }{
		{craftPath("axe"), `{"inputs":["I1","P1"],"output":"AXE"}`},
		{itemPath("I1", "claim"), `{}`},
		{itemPath("P1", "claim"), `{}`},
		{craftPath("axe"), `{"inputs":["P1","I1"],"output":"AXE","name":"Woodsplitter"}`},
		{itemPath("AXE", "list"), `{"price":450}`},
	} {
		run(p, o.path, o.body)
	}
	writes = append(writes, p.Tx.Writes())
	p.Commit()
	b := w.open(p3, `{"listing":"AXE"}`)
	run(b, listingPath("AXE", "buy"), `{"price":400}`)
	run(b, listingPath("AXE", "buy"), `{"price":450}`)
	run(b, itemPath("AXE", "transfer"), `{"to":"p-2"}`)
	writes = append(writes, b.Tx.Writes())
	b.Commit()
	for _, q := range []string{"/items/AXE", "/items/I1", "/listings/AXE", "/wallets/p-1", "/wallets/p-3", "/recipes/axe"} {
		resps = append(resps, w.Query("/v1/assets"+q))
	}
	return resps, writes, w.Store
}

// TestDeterminism: the same ops give the same answers (byte for byte, and
// so the same result hashes), the same write sets and the same state.
func TestDeterminism(t *testing.T) {
	r1, w1, s1 := transcript(t)
	r2, w2, s2 := transcript(t)
	if len(r1) != len(r2) {
		t.Fatalf("got %d and %d answers", len(r1), len(r2))
	}
	for i := range r1 {
		if r1[i].Status != r2[i].Status || !bytes.Equal(r1[i].Body, r2[i].Body) || r1[i].Hash() != r2[i].Hash() {
			t.Fatalf("answer %d: got %d %s, then %d %s", i, r1[i].Status, r1[i].Body, r2[i].Status, r2[i].Body)
		}
	}
	if !reflect.DeepEqual(w1, w2) {
		t.Fatalf("write sets differ:\n%v\n%v", w1, w2)
	}
	if !reflect.DeepEqual(s1, s2) {
		t.Fatal("final states differ")
	}
	// The transcript's refusals are the ones it was written to have.
	var codes []int
	for _, r := range r1 {
		codes = append(codes, r.Status)
	}
	want := []int{201, 409, 201, 200, 409, 200, 200, 201, 201, 409, 200, 200, 200, 200, 200, 200, 200, 200}
	if !slices.Equal(codes, want) {
		t.Fatalf("statuses %v, want %v", codes, want)
	}
}

// TestGenesis: what the genesis loader accepts and refuses.
func TestGenesis(t *testing.T) {
	actors := []service.Actor{
		{ID: gm, Role: assets.RoleGamemaster, Org: "o", PublicKey: servicetest.Key(gm).Public().(ed25519.PublicKey)},
		{ID: p1, Role: assets.RolePlayer, Org: "o", PublicKey: servicetest.Key(p1).Public().(ed25519.PublicKey)},
	}
	load := func(app string) error {
		return assets.App.InitGenesis(service.NewTx(servicetest.Store{}), assets.App.Genesis(actors, json.RawMessage(app)))
	}
	if err := load(string(assets.DemoGenesis(actors))); err != nil {
		t.Fatalf("demo genesis: %v", err)
	}
	for _, tt := range []struct{ app, err string }{
		{`{"wallets":[{"player":"p-1","coins":1}],"extra":1}`, "unknown field"},
		{`{"wallets":[{"player":"p-9","coins":1}]}`, "player p-9 not found"},
		{`{"wallets":[{"player":"gm-1","coins":1}]}`, `role "gamemaster"`},
		{`{"wallets":[{"player":"p-1","coins":1},{"player":"p-1","coins":2}]}`, "duplicate"},
		{`{"wallets":[{"player":"p-1","coins":1000000000000001}]}`, "over the limit"},
		{`{"recipes":[{"id":"r","inputs":[{"kind":"a","qty":0}],"output":"b"}]}`, "qty must be 1-16"},
		{`{"recipes":[{"id":"r","inputs":[{"kind":"a","qty":1}],"output":"b"},{"id":"r","inputs":[{"kind":"a","qty":1}],"output":"b"}]}`, "duplicate"},
	} {
		err := load(tt.app)
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("genesis %s: got %v, want an error containing %q", tt.app, err, tt.err)
		}
	}
	other := &service.Genesis{AppName: "supplychain", AppVersion: "1.0.0", Actors: actors}
	if err := assets.App.InitGenesis(service.NewTx(servicetest.Store{}), service.MustJSON(other)); err == nil || !strings.Contains(err.Error(), "supplychain") {
		t.Errorf("another app's genesis: got %v, want a refusal naming it", err)
	}
}

// TestDemoGenesis: a demo network's players start with DemoCoins and the
// demo recipes exist.
func TestDemoGenesis(t *testing.T) {
	var actors []service.Actor
	ids := map[string]string{}
	count := map[string]int{}
	for _, d := range append([]service.DemoActor{{Role: service.RoleAdmin, Org: "consortium"}}, assets.App.DemoActors...) {
		count[d.Role]++
		id := fmt.Sprintf("%s-%d", d.Role, count[d.Role])
		ids[id] = d.Role
		actors = append(actors, service.Actor{ID: id, Role: d.Role})
	}
	if count[assets.RoleGamemaster] < 1 || count[assets.RolePlayer] < 2 {
		t.Fatalf("demo actors %v: want a gamemaster and two players", count)
	}
	w := servicetest.NewWorld(t, assets.App, ids, assets.DemoGenesis(actors))
	var r struct{ Wallet assets.Wallet }
	w.QueryJSON(assets.PathWallets+"/player-2", &r)
	if r.Wallet.Coins != assets.DemoCoins {
		t.Fatalf("player-2 holds %d, want %d", r.Wallet.Coins, assets.DemoCoins)
	}
	for _, rec := range assets.DemoRecipes {
		if resp := w.Query(assets.PathRecipes + "/" + rec.ID); resp.Status != http.StatusOK {
			t.Errorf("recipe %s: %d %s", rec.ID, resp.Status, resp.Body)
		}
	}
}
