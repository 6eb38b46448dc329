package assets

import (
	"context"
	"net/http"

	"github.com/duet-bft/duet/client"
)

// Typed calls of the assets application for Go programs, over the SDK's
// client.Session: wrap one to call the routes by name,
//
//	s := assets.Session{Session: c.NewSession(buyer, "buy-1")}
//	err := s.Start(ctx, map[string]string{"listing": "ITEM-1"})
//	var p assets.Purchase
//	_, err = s.Buy(ctx, "ITEM-1", 100, &p)
//	err = s.Commit(ctx)
//
// Each call is the next op of the session (seq 0 makes it a direct-mode
// op). out, if not nil, receives the record the route answers with.

// Session is a client session with the assets application's calls.
type Session struct{ *client.Session }

// DefineRecipe defines a recipe (gamemaster).
func (s Session) DefineRecipe(ctx context.Context, r RecipeSpec, out *Recipe) (*client.Result, error) {
	return s.Do(ctx, http.MethodPost, PathRecipes, r, recipeOut(out))
}

// Mint creates items (gamemaster): held by owner, or loot if owner is "".
func (s Session) Mint(ctx context.Context, owner string, items []NewItem, out *[]Item) (*client.Result, error) {
	return s.Do(ctx, http.MethodPost, PathItems, MintRequest{Owner: owner, Items: items}, itemsOut(out))
}

// Grant adds coins to a player's wallet (gamemaster).
func (s Session) Grant(ctx context.Context, player string, amount uint64, out *Wallet) (*client.Result, error) {
	return s.Do(ctx, http.MethodPost, PathWallets+"/"+player+"/grant", GrantRequest{Amount: &amount}, walletOut(out))
}

// Claim takes an item of unclaimed loot (player).
func (s Session) Claim(ctx context.Context, item string, out *Item) (*client.Result, error) {
	return s.Do(ctx, http.MethodPost, PathItems+"/"+item+"/claim", map[string]any{}, itemOut(out))
}

// Transfer gives an item to another player (player).
func (s Session) Transfer(ctx context.Context, item, to string, out *Item) (*client.Result, error) {
	return s.Do(ctx, http.MethodPost, PathItems+"/"+item+"/transfer", TransferRequest{To: to}, itemOut(out))
}

// Craft consumes inputs by recipe and creates the item output, named name
// ("" for none) (player).
func (s Session) Craft(ctx context.Context, recipe string, inputs []string, output, name string, out *Item) (*client.Result, error) {
	body := CraftRequest{Inputs: inputs, Output: output, Name: name}
	return s.Do(ctx, http.MethodPost, PathRecipes+"/"+recipe+"/craft", body, itemOut(out))
}

// List puts an item up for sale at price coins (player).
func (s Session) List(ctx context.Context, item string, price uint64, out *Listing) (*client.Result, error) {
	return s.Do(ctx, http.MethodPost, PathItems+"/"+item+"/list", PriceRequest{Price: &price}, listingOut(out))
}

// Cancel closes the actor's own open listing of item (player).
func (s Session) Cancel(ctx context.Context, item string, out *Listing) (*client.Result, error) {
	return s.Do(ctx, http.MethodPost, PathListings+"/"+item+"/cancel", map[string]any{}, listingOut(out))
}

// Buy buys the listed item at price, which must be the listing's (player).
func (s Session) Buy(ctx context.Context, item string, price uint64, out *Purchase) (*client.Result, error) {
	return s.Do(ctx, http.MethodPost, PathListings+"/"+item+"/buy", PriceRequest{Price: &price}, orNil(out))
}

// GetItem reads an item from the node's L2 view.
func GetItem(ctx context.Context, c *client.Client, id string) (*Item, error) {
	var it Item
	if err := c.Get(ctx, PathItems+"/"+id, itemOut(&it)); err != nil {
		return nil, err
	}
	return &it, nil
}

// GetListing reads an item's listing from the node's L2 view.
func GetListing(ctx context.Context, c *client.Client, item string) (*Listing, error) {
	var l Listing
	if err := c.Get(ctx, PathListings+"/"+item, listingOut(&l)); err != nil {
		return nil, err
	}
	return &l, nil
}

// GetWallet reads a player's wallet from the node's L2 view.
func GetWallet(ctx context.Context, c *client.Client, player string) (*Wallet, error) {
	var w Wallet
	if err := c.Get(ctx, PathWallets+"/"+player, walletOut(&w)); err != nil {
		return nil, err
	}
	return &w, nil
}

// GetRecipe reads a recipe from the node's L2 view.
func GetRecipe(ctx context.Context, c *client.Client, id string) (*Recipe, error) {
	var r Recipe
	if err := c.Get(ctx, PathRecipes+"/"+id, recipeOut(&r)); err != nil {
		return nil, err
	}
	return &r, nil
}

// The routes answer {"item": ...}, {"listing": ...} and so on: these
// decode such a body into out, or are nil if out is (Do then skips
// decoding).

func itemOut(out *Item) any {
	if out == nil {
		return nil
	}
	return &struct {
		Item *Item `json:"item"`
	}{out}
}

func itemsOut(out *[]Item) any {
	if out == nil {
		return nil
	}
	return &struct {
		Items *[]Item `json:"items"`
	}{out}
}

func listingOut(out *Listing) any {
	if out == nil {
		return nil
	}
	return &struct {
		Listing *Listing `json:"listing"`
	}{out}
}

func walletOut(out *Wallet) any {
	if out == nil {
		return nil
	}
	return &struct {
		Wallet *Wallet `json:"wallet"`
	}{out}
}

func recipeOut(out *Recipe) any {
	if out == nil {
		return nil
	}
	return &struct {
		Recipe *Recipe `json:"recipe"`
	}{out}
}

// orNil turns a nil typed pointer into a nil interface, so Do skips decoding.
func orNil[T any](p *T) any {
	if p == nil {
		return nil
	}
	return p
}
