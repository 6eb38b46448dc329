package assets_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/duet-bft/duet/apps/assets"
	"github.com/duet-bft/duet/client"
	"github.com/duet-bft/duet/service/servicetest"
)

// TestClient: each typed call sends its route's method, path and body as
// a signed op, and decodes the answer's record.
func TestClient(t *testing.T) {
	var got struct{ method, path, body, actor string }
	var reply string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.method, got.path, got.body, got.actor = r.Method, r.URL.Path, string(b), r.Header.Get("Duet-Actor")
		io.WriteString(w, reply)
	}))
	defer srv.Close()
	c := client.New(srv.URL)
	s := assets.Session{Session: c.NewSession(client.Signer{ID: p1, Key: servicetest.Key(p1)}, "c-1")}
	ctx := context.Background()

	item := assets.Item{ID: "X", Kind: "gem", Owner: p1, State: assets.StateHeld, CreatedBy: gm, CreatedAt: 1, UpdatedAt: 2}
	listing := assets.Listing{Item: "X", Kind: "gem", Seller: p1, Price: 5, State: assets.ListingOpen, ListedAt: 3}
	wallet := assets.Wallet{Player: p1, Coins: 9}
	recipe := assets.Recipe{RecipeSpec: assets.RecipeSpec{ID: "r", Inputs: []assets.Ingredient{{Kind: "a", Qty: 1}}, Output: "b"}, DefinedBy: gm}
	enc := func(field string, v any) string {
		b, _ := json.Marshal(map[string]any{field: v})
		return string(b)
	}
	tests := []struct {
		name, method, path, body, reply string
		call                            func() (any, error)
		want                            any
	}{
		{"DefineRecipe", "POST", assets.PathRecipes, `{"id":"r","inputs":[{"kind":"a","qty":1}],"output":"b"}`, enc("recipe", recipe),
			func() (any, error) {
				var out assets.Recipe
				_, err := s.DefineRecipe(ctx, recipe.RecipeSpec, &out)
				return out, err
			}, recipe},
		{"Mint", "POST", assets.PathItems, `{"owner":"p-1","items":[{"id":"X","kind":"gem"}]}`, enc("items", []assets.Item{item}),
			func() (any, error) {
				var out []assets.Item
				_, err := s.Mint(ctx, p1, []assets.NewItem{{ID: "X", Kind: "gem"}}, &out)
				return out, err
			}, []assets.Item{item}},
		{"Mint loot", "POST", assets.PathItems, `{"items":[{"id":"X","kind":"gem"}]}`, enc("items", []assets.Item{item}),
			func() (any, error) {
				_, err := s.Mint(ctx, "", []assets.NewItem{{ID: "X", Kind: "gem"}}, nil)
				return nil, err
			}, nil},
		{"Grant", "POST", grantPath(p1), `{"amount":9}`, enc("wallet", wallet),
			func() (any, error) {
				var out assets.Wallet
				_, err := s.Grant(ctx, p1, 9, &out)
				return out, err
			}, wallet},
		{"Claim", "POST", itemPath("X", "claim"), `{}`, enc("item", item),
			func() (any, error) {
				var out assets.Item
				_, err := s.Claim(ctx, "X", &out)
				return out, err
			}, item},
		{"Transfer", "POST", itemPath("X", "transfer"), `{"to":"p-2"}`, enc("item", item),
			func() (any, error) {
				var out assets.Item
				_, err := s.Transfer(ctx, "X", p2, &out)
				return out, err
			}, item},
		{"Craft", "POST", craftPath("r"), `{"inputs":["A","B"],"output":"X","name":"Shiny"}`, enc("item", item),
			func() (any, error) {
				var out assets.Item
				_, err := s.Craft(ctx, "r", []string{"A", "B"}, "X", "Shiny", &out)
				return out, err
			}, item},
		{"List", "POST", itemPath("X", "list"), `{"price":5}`, enc("listing", listing),
			func() (any, error) {
				var out assets.Listing
				_, err := s.List(ctx, "X", 5, &out)
				return out, err
			}, listing},
		{"Cancel", "POST", listingPath("X", "cancel"), `{}`, enc("listing", listing),
			func() (any, error) {
				var out assets.Listing
				_, err := s.Cancel(ctx, "X", &out)
				return out, err
			}, listing},
		{"Buy", "POST", listingPath("X", "buy"), `{"price":5}`, `{"listing":{"item":"X"},"item":{"id":"X"},"wallet":{"coins":4}}`,
			func() (any, error) {
				var out assets.Purchase
				_, err := s.Buy(ctx, "X", 5, &out)
				return out, err
			}, assets.Purchase{Listing: &assets.Listing{Item: "X"}, Item: &assets.Item{ID: "X"}, Wallet: &assets.Wallet{Coins: 4}}},
		{"GetItem", "GET", assets.PathItems + "/X", ``, enc("item", item),
			func() (any, error) {
				it, err := assets.GetItem(ctx, c, "X")
				return *it, err
			}, item},
		{"GetListing", "GET", assets.PathListings + "/X", ``, enc("listing", listing),
			func() (any, error) {
				l, err := assets.GetListing(ctx, c, "X")
				return *l, err
			}, listing},
		{"GetWallet", "GET", assets.PathWallets + "/p-1", ``, enc("wallet", wallet),
			func() (any, error) {
				w, err := assets.GetWallet(ctx, c, p1)
				return *w, err
			}, wallet},
		{"GetRecipe", "GET", assets.PathRecipes + "/r", ``, enc("recipe", recipe),
			func() (any, error) {
				r, err := assets.GetRecipe(ctx, c, "r")
				return *r, err
			}, recipe},
	}
	for _, tt := range tests {
		reply = tt.reply
		out, err := tt.call()
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got.method != tt.method || got.path != tt.path || got.body != tt.body {
			t.Errorf("%s: sent %s %s %s, want %s %s %s", tt.name, got.method, got.path, got.body, tt.method, tt.path, tt.body)
		}
		if tt.method == "POST" && got.actor != p1 {
			t.Errorf("%s: Duet-Actor %q, want %s", tt.name, got.actor, p1)
		}
		if !reflect.DeepEqual(out, tt.want) {
			t.Errorf("%s: decoded %+v, want %+v", tt.name, out, tt.want)
		}
	}
	if s.Seq() != 10 {
		t.Errorf("the session is at seq %d after 10 ops, want 10", s.Seq())
	}
}
