// Package assets is a duet application for game assets in a shared virtual
// world: items that players own, craft with, give away and trade for coins.
// Players want an answer at once (the sword is crafted, the sale went
// through), and the world's economy must stay consistent for every
// organisation that runs it: no item sold twice, no coin spent twice.
//
// A gamemaster defines crafting recipes, mints items (to a player, or as
// loot that the first player to claim it owns) and grants coins. A player
// claims loot, crafts (a recipe consumes input items and creates a new
// one), transfers items to other players, lists items for sale, cancels a
// listing, and buys listed items. A purchase moves the price from the
// buyer's wallet to the seller's, the item to the buyer, and closes the
// listing, in one op.
//
// An item moves through the states
//
//	loot -> held <-> listed
//	held -> consumed (crafting; terminal)
//
// State keys all begin with "assets/": one key per item (ItemKey), per
// listing (ListingKey, keyed by the item), per wallet (WalletKey) and per
// recipe (RecipeKey). There is no per-player index of items: every session
// of a player would write it, and an L2 node serialises sessions that write
// the same key (see docs/apps.md, "Reservations").
//
// Every handler is a deterministic service.HandlerE: state only through the
// service.Tx, the op's time from the Context, ids from the request.
package assets

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"unicode"

	"github.com/duet-bft/duet/service"
)

// Roles of the asset actors, besides the framework's admin.
const (
	RoleGamemaster = "gamemaster" // defines recipes, mints items, grants coins
	RolePlayer     = "player"     // claims, crafts, transfers, lists and buys
)

// States of an item.
const (
	StateLoot     = "loot"     // minted without an owner: the first player to claim it owns it
	StateHeld     = "held"     // owned and free: it may be crafted with, transferred or listed
	StateListed   = "listed"   // owned and up for sale (ListingKey holds the listing)
	StateConsumed = "consumed" // used up by crafting; terminal
)

// States of a listing.
const (
	ListingOpen      = "open"
	ListingSold      = "sold"
	ListingCancelled = "cancelled"
)

// Limits on request contents. Bodies are also bounded by protocol.MaxBody.
const (
	MaxMint        = 64 // items minted by one op
	MaxCraftInputs = 16 // items one craft consumes: the sum of a recipe's quantities
	MaxNameLen     = 128
	// MaxAmount bounds a grant and a price, in coins.
	MaxAmount = 1_000_000_000_000
	// MaxBalance bounds a wallet, in coins. It is below 2^53, so a balance
	// is exact in every JSON client, and a balance plus an amount cannot
	// overflow.
	MaxBalance = 1_000_000_000_000_000
)

// Route paths.
const (
	PathRecipes  = "/v1/assets/recipes"
	PathItems    = "/v1/assets/items"
	PathListings = "/v1/assets/listings"
	PathWallets  = "/v1/assets/wallets"
)

// ItemKey is the state key of an item.
func ItemKey(id string) string { return "assets/item/" + id }

// ListingKey is the state key of the listing of an item: its latest one,
// open or closed.
func ListingKey(item string) string { return "assets/listing/" + item }

// WalletKey is the state key of a player's wallet. A player without one
// holds 0 coins.
func WalletKey(player string) string { return "assets/wallet/" + player }

// RecipeKey is the state key of a recipe. Recipes never change once
// defined, so sessions that read one never wait for each other.
func RecipeKey(id string) string { return "assets/recipe/" + id }

// Item is the state record of an item, stored as JSON under ItemKey.
type Item struct {
	ID    string `json:"id"`
	Kind  string `json:"kind"` // e.g. "iron-sword"; what recipes consume and make
	Name  string `json:"name,omitempty"`
	Owner string `json:"owner,omitempty"` // the player; "" while loot
	State string `json:"state"`
	// CreatedBy is the gamemaster who minted it or the player who crafted
	// it, at CreatedAt (op time, Unix ms).
	CreatedBy string `json:"created_by"`
	CreatedAt int64  `json:"created_at"`
	// Recipe and CraftedFrom are set on a crafted item: the recipe and the
	// items it consumed, in the order the request named them.
	Recipe      string   `json:"recipe,omitempty"`
	CraftedFrom []string `json:"crafted_from,omitempty"`
	// ConsumedInto is set on a consumed item: the item crafted from it.
	ConsumedInto string `json:"consumed_into,omitempty"`
	UpdatedAt    int64  `json:"updated_at"` // op time of the last change
}

// NewItem is one item a gamemaster mints.
type NewItem struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
	Name string `json:"name,omitempty"`
}

// Listing is the state record of an item's listing, stored as JSON under
// ListingKey. Listing an item again overwrites its closed listing.
type Listing struct {
	Item     string `json:"item"`
	Kind     string `json:"kind"`
	Seller   string `json:"seller"`
	Price    uint64 `json:"price"` // coins
	State    string `json:"state"`
	ListedAt int64  `json:"listed_at"`
	Buyer    string `json:"buyer,omitempty"`     // set when sold
	ClosedAt int64  `json:"closed_at,omitempty"` // set when sold or cancelled
}

// Wallet is the state record of a player's coins, stored as JSON under
// WalletKey.
type Wallet struct {
	Player string `json:"player"`
	Coins  uint64 `json:"coins"`
}

// Ingredient is one input of a recipe: Qty items of Kind.
type Ingredient struct {
	Kind string `json:"kind"`
	Qty  int    `json:"qty"`
}

// RecipeSpec is what a gamemaster (or the genesis) defines: the items a
// craft consumes and the kind it makes.
type RecipeSpec struct {
	ID     string       `json:"id"`
	Inputs []Ingredient `json:"inputs"`
	Output string       `json:"output"` // the kind of the crafted item
}

// Recipe is the state record of a recipe, stored as JSON under RecipeKey.
// Inputs are sorted by kind. DefinedBy and DefinedAt are empty for a
// recipe of the genesis.
type Recipe struct {
	RecipeSpec
	DefinedBy string `json:"defined_by,omitempty"`
	DefinedAt int64  `json:"defined_at,omitempty"`
}

// MintRequest is the body of a mint: the items, held by Owner, or loot if
// Owner is "".
type MintRequest struct {
	Owner string    `json:"owner,omitempty"`
	Items []NewItem `json:"items"`
}

// GrantRequest is the body of a grant. Amount is required.
type GrantRequest struct {
	Amount *uint64 `json:"amount"`
}

// TransferRequest is the body of a transfer: the player who gets the item.
type TransferRequest struct {
	To string `json:"to"`
}

// PriceRequest is the body of a listing (the asking price) and of a
// purchase (the price the buyer agrees to pay). Price is required.
type PriceRequest struct {
	Price *uint64 `json:"price"`
}

// CraftRequest is the body of a craft: the items to consume, the id of the
// new item and, optionally, its name.
type CraftRequest struct {
	Inputs []string `json:"inputs"`
	Output string   `json:"output"`
	Name   string   `json:"name,omitempty"`
}

// Purchase is the answer to a buy: the closed listing, the item now the
// buyer's, and the buyer's wallet after paying.
type Purchase struct {
	Listing *Listing `json:"listing"`
	Item    *Item    `json:"item"`
	Wallet  *Wallet  `json:"wallet"`
}

// New returns service.NewRegistry() with Register applied.
func New() *service.Registry {
	r := service.NewRegistry()
	Register(r)
	return r
}

// Register adds the asset routes, the genesis loader and the session-start
// hook to r.
func Register(r *service.Registry) {
	gm := []string{RoleGamemaster}
	player := []string{RolePlayer}

	r.Handle(http.MethodPost, PathRecipes, gm, service.Adapt(defineRecipe))
	r.Handle(http.MethodPost, PathItems, gm, service.Adapt(mint))
	r.Handle(http.MethodPost, PathWallets+"/{player}/grant", gm, service.Adapt(grant))

	r.Handle(http.MethodPost, PathItems+"/{id}/claim", player, service.Adapt(claim))
	r.Handle(http.MethodPost, PathItems+"/{id}/transfer", player, service.Adapt(transfer))
	r.Handle(http.MethodPost, PathItems+"/{id}/list", player, service.Adapt(list))
	r.Handle(http.MethodPost, PathRecipes+"/{id}/craft", player, service.Adapt(craft))
	r.Handle(http.MethodPost, PathListings+"/{id}/buy", player, service.Adapt(buy))
	r.Handle(http.MethodPost, PathListings+"/{id}/cancel", player, service.Adapt(cancel))

	r.Handle(http.MethodGet, PathItems+"/{id}", nil, service.Adapt(getItem))
	r.Handle(http.MethodGet, PathListings+"/{id}", nil, service.Adapt(getListing))
	r.Handle(http.MethodGet, PathWallets+"/{player}", nil, service.Adapt(getWallet))
	r.Handle(http.MethodGet, PathRecipes+"/{id}", nil, service.Adapt(getRecipe))

	r.Genesis(loadGenesis)
	r.OnStart(startSession)
}

// startSession checks a session start. A player may name, in the start
// body, what the session works on, and the session claims it from the
// start: a second session on it, on the same L2 node, gets 409 before it
// does anything.
//
//   - {"listing":"ITEM-1"}: an open listing (to buy it, or to cancel it);
//     claims ListingKey("ITEM-1").
//   - {"items":["A","B"]}: up to MaxCraftInputs items, each the player's
//     own or unclaimed loot, and not consumed; claims their ItemKeys.
//
// Only a player may claim, and only what exists and what it may act on,
// so no one can hold keys they could not write. Other fields of the body
// are kept in the start's result and otherwise ignored.
func startSession(tx *service.Tx, ctx *service.Context, start map[string]json.RawMessage) ([]string, error) {
	rawListing, hasListing := start["listing"]
	rawItems, hasItems := start["items"]
	if !hasListing && !hasItems {
		return nil, nil
	}
	var listing string
	var items []string
	if hasListing {
		if err := json.Unmarshal(rawListing, &listing); err != nil {
			return nil, service.Invalid("listing must be a string: the id of a listed item")
		}
		if err := service.CheckID("listing", listing); err != nil {
			return nil, err
		}
	}
	if hasItems {
		if err := json.Unmarshal(rawItems, &items); err != nil {
			return nil, service.Invalid("items must be an array of item ids")
		}
		if err := checkIDs("items", items, MaxCraftInputs); err != nil {
			return nil, err
		}
	}
	if ctx.Actor.Role != RolePlayer {
		return nil, service.Forbidden("role %q may not claim items or listings at a session's start (needs %s)", ctx.Actor.Role, RolePlayer)
	}
	var claims []string
	if hasListing {
		l, err := loadListing(tx, listing)
		if err != nil {
			return nil, err
		}
		if l.State != ListingOpen {
			return nil, closedListing(l)
		}
		claims = append(claims, ListingKey(listing))
	}
	for _, id := range items {
		it, err := loadItem(tx, id)
		if err != nil {
			return nil, err
		}
		switch {
		case it.State == StateConsumed:
			return nil, service.Precondition("item %s was consumed crafting %s", it.ID, it.ConsumedInto)
		case it.State != StateLoot && it.Owner != ctx.Actor.ID:
			return nil, service.Forbidden("item %s belongs to %s", it.ID, it.Owner)
		}
		claims = append(claims, ItemKey(id))
	}
	return claims, nil
}

// checkIDs checks a list of 1-max distinct ids.
func checkIDs(what string, ids []string, max int) error {
	if len(ids) == 0 || len(ids) > max {
		return service.Invalid("%s must hold 1-%d ids, got %d", what, max, len(ids))
	}
	for i, id := range ids {
		if err := service.CheckID(fmt.Sprintf("%s[%d]", what, i), id); err != nil {
			return err
		}
		if slices.Contains(ids[:i], id) {
			return service.Invalid("%s[%d] %s is named twice", what, i, id)
		}
	}
	return nil
}

// checkName checks an item's display name: at most MaxNameLen bytes, no
// control characters.
func checkName(what, name string) error {
	if len(name) > MaxNameLen {
		return service.Invalid("%s must be at most %d bytes, got %d", what, MaxNameLen, len(name))
	}
	if strings.ContainsFunc(name, unicode.IsControl) {
		return service.Invalid("%s must not contain control characters", what)
	}
	return nil
}

// checkAmount checks a grant or a price.
func checkAmount(what string, v *uint64) error {
	if v == nil {
		return service.Invalid("%s is required", what)
	}
	if *v < 1 || *v > MaxAmount {
		return service.Invalid("%s must be 1-%d coins, got %d", what, uint64(MaxAmount), *v)
	}
	return nil
}

func loadItem(tx *service.Tx, id string) (*Item, error) {
	if err := service.CheckID("item id", id); err != nil {
		return nil, err
	}
	return service.Load[Item](tx, ItemKey(id), "item "+id)
}

func loadListing(tx *service.Tx, item string) (*Listing, error) {
	if err := service.CheckID("listing id", item); err != nil {
		return nil, err
	}
	return service.Load[Listing](tx, ListingKey(item), "listing "+item)
}

func loadRecipe(tx *service.Tx, id string) (*Recipe, error) {
	if err := service.CheckID("recipe id", id); err != nil {
		return nil, err
	}
	return service.Load[Recipe](tx, RecipeKey(id), "recipe "+id)
}

// loadWallet reads a player's wallet; a player without one holds 0 coins.
func loadWallet(tx *service.Tx, player string) (*Wallet, error) {
	w, ok, err := service.Lookup[Wallet](tx, WalletKey(player))
	if err != nil {
		return nil, err
	}
	if !ok {
		return &Wallet{Player: player}, nil
	}
	return w, nil
}

// loadPlayer checks that id is a registered player (not revoked).
func loadPlayer(tx *service.Tx, what, id string) error {
	if err := service.CheckID(what, id); err != nil {
		return err
	}
	a, ok := service.LoadActor(tx, id)
	if !ok {
		return service.NotFound("player %s not found", id)
	}
	if a.Role != RolePlayer {
		return service.Invalid("%s %s has role %q, not %q", what, id, a.Role, RolePlayer)
	}
	return nil
}

// heldBy loads item id and checks that actor owns it and that it is free:
// neither listed nor consumed.
func heldBy(tx *service.Tx, id, actor string) (*Item, error) {
	it, err := loadItem(tx, id)
	if err != nil {
		return nil, err
	}
	switch {
	case it.State == StateLoot:
		return nil, service.Precondition("item %s is unclaimed loot: claim it first", it.ID)
	case it.Owner != actor:
		return nil, service.Forbidden("item %s belongs to %s", it.ID, it.Owner)
	case it.State == StateListed:
		return nil, service.Precondition("item %s is listed for sale: cancel the listing first", it.ID)
	case it.State == StateConsumed:
		return nil, service.Precondition("item %s was consumed crafting %s", it.ID, it.ConsumedInto)
	}
	return it, nil
}

func closedListing(l *Listing) error {
	if l.State == ListingSold {
		return service.Precondition("listing %s is sold (to %s)", l.Item, l.Buyer)
	}
	return service.Precondition("listing %s is %s", l.Item, l.State)
}

func defineRecipe(tx *service.Tx, ctx *service.Context, req *service.Request) (service.Response, error) {
	var spec RecipeSpec
	if err := req.Decode(&spec); err != nil {
		return service.Response{}, err
	}
	r, err := newRecipe(spec)
	if err != nil {
		return service.Response{}, err
	}
	if _, exists := tx.Get(RecipeKey(r.ID)); exists {
		return service.Response{}, service.Conflict("recipe %s already exists", r.ID)
	}
	r.DefinedBy, r.DefinedAt = ctx.Actor.ID, ctx.Time
	tx.PutJSON(RecipeKey(r.ID), r)
	return service.JSON(http.StatusCreated, map[string]*Recipe{"recipe": r}), nil
}

// newRecipe checks a recipe's shape and returns its record, inputs sorted
// by kind.
func newRecipe(spec RecipeSpec) (*Recipe, error) {
	if err := service.CheckID("recipe id", spec.ID); err != nil {
		return nil, err
	}
	if err := service.CheckID("output", spec.Output); err != nil {
		return nil, err
	}
	if len(spec.Inputs) == 0 || len(spec.Inputs) > MaxCraftInputs {
		return nil, service.Invalid("inputs must hold 1-%d ingredients, got %d", MaxCraftInputs, len(spec.Inputs))
	}
	total := 0
	for i, in := range spec.Inputs {
		if err := service.CheckID(fmt.Sprintf("inputs[%d].kind", i), in.Kind); err != nil {
			return nil, err
		}
		if slices.ContainsFunc(spec.Inputs[:i], func(o Ingredient) bool { return o.Kind == in.Kind }) {
			return nil, service.Invalid("inputs[%d].kind %s is listed twice", i, in.Kind)
		}
		if in.Qty < 1 || in.Qty > MaxCraftInputs {
			return nil, service.Invalid("inputs[%d].qty must be 1-%d, got %d", i, MaxCraftInputs, in.Qty)
		}
		total += in.Qty
	}
	if total > MaxCraftInputs {
		return nil, service.Invalid("a recipe may consume at most %d items, this one %d", MaxCraftInputs, total)
	}
	r := &Recipe{RecipeSpec: RecipeSpec{ID: spec.ID, Inputs: slices.Clone(spec.Inputs), Output: spec.Output}}
	slices.SortFunc(r.Inputs, func(a, b Ingredient) int { return strings.Compare(a.Kind, b.Kind) })
	return r, nil
}

func mint(tx *service.Tx, ctx *service.Context, req *service.Request) (service.Response, error) {
	var body MintRequest
	if err := req.Decode(&body); err != nil {
		return service.Response{}, err
	}
	if len(body.Items) == 0 || len(body.Items) > MaxMint {
		return service.Response{}, service.Invalid("items must hold 1-%d items, got %d", MaxMint, len(body.Items))
	}
	for i, n := range body.Items {
		if err := service.CheckID(fmt.Sprintf("items[%d].id", i), n.ID); err != nil {
			return service.Response{}, err
		}
		if slices.ContainsFunc(body.Items[:i], func(o NewItem) bool { return o.ID == n.ID }) {
			return service.Response{}, service.Invalid("items[%d].id %s is listed twice", i, n.ID)
		}
		if err := service.CheckID(fmt.Sprintf("items[%d].kind", i), n.Kind); err != nil {
			return service.Response{}, err
		}
		if err := checkName(fmt.Sprintf("items[%d].name", i), n.Name); err != nil {
			return service.Response{}, err
		}
	}
	state := StateLoot
	if body.Owner != "" {
		if err := loadPlayer(tx, "owner", body.Owner); err != nil {
			return service.Response{}, err
		}
		state = StateHeld
	}
	out := make([]*Item, len(body.Items))
	for i, n := range body.Items {
		if _, exists := tx.Get(ItemKey(n.ID)); exists {
			return service.Response{}, service.Conflict("item %s already exists", n.ID)
		}
		out[i] = &Item{ID: n.ID, Kind: n.Kind, Name: n.Name, Owner: body.Owner, State: state,
			CreatedBy: ctx.Actor.ID, CreatedAt: ctx.Time, UpdatedAt: ctx.Time}
	}
	for _, it := range out {
		tx.PutJSON(ItemKey(it.ID), it)
	}
	return service.JSON(http.StatusCreated, map[string][]*Item{"items": out}), nil
}

func grant(tx *service.Tx, ctx *service.Context, req *service.Request) (service.Response, error) {
	var body GrantRequest
	if err := req.Decode(&body); err != nil {
		return service.Response{}, err
	}
	if err := checkAmount("amount", body.Amount); err != nil {
		return service.Response{}, err
	}
	player := req.Param("player")
	if err := loadPlayer(tx, "player", player); err != nil {
		return service.Response{}, err
	}
	w, err := loadWallet(tx, player)
	if err != nil {
		return service.Response{}, err
	}
	if w.Coins+*body.Amount > MaxBalance {
		return service.Response{}, service.Precondition("wallet of %s holds %d coins: %d more would pass the limit of %d",
			player, w.Coins, *body.Amount, uint64(MaxBalance))
	}
	w.Coins += *body.Amount
	tx.PutJSON(WalletKey(player), w)
	return service.JSON(http.StatusOK, map[string]*Wallet{"wallet": w}), nil
}

func claim(tx *service.Tx, ctx *service.Context, req *service.Request) (service.Response, error) {
	var body struct{}
	if err := req.DecodeOptional(&body); err != nil {
		return service.Response{}, err
	}
	it, err := loadItem(tx, req.Param("id"))
	if err != nil {
		return service.Response{}, err
	}
	if it.State != StateLoot {
		return service.Response{}, service.Precondition("item %s is not unclaimed loot: %s owns it", it.ID, it.Owner)
	}
	it.Owner, it.State, it.UpdatedAt = ctx.Actor.ID, StateHeld, ctx.Time
	tx.PutJSON(ItemKey(it.ID), it)
	return service.JSON(http.StatusOK, map[string]*Item{"item": it}), nil
}

func transfer(tx *service.Tx, ctx *service.Context, req *service.Request) (service.Response, error) {
	var body TransferRequest
	if err := req.Decode(&body); err != nil {
		return service.Response{}, err
	}
	if err := service.CheckID("to", body.To); err != nil {
		return service.Response{}, err
	}
	if body.To == ctx.Actor.ID {
		return service.Response{}, service.Invalid("to names the item's owner: a transfer goes to another player")
	}
	it, err := heldBy(tx, req.Param("id"), ctx.Actor.ID)
	if err != nil {
		return service.Response{}, err
	}
	if err := loadPlayer(tx, "to", body.To); err != nil {
		return service.Response{}, err
	}
	it.Owner, it.UpdatedAt = body.To, ctx.Time
	tx.PutJSON(ItemKey(it.ID), it)
	return service.JSON(http.StatusOK, map[string]*Item{"item": it}), nil
}

func list(tx *service.Tx, ctx *service.Context, req *service.Request) (service.Response, error) {
	var body PriceRequest
	if err := req.Decode(&body); err != nil {
		return service.Response{}, err
	}
	if err := checkAmount("price", body.Price); err != nil {
		return service.Response{}, err
	}
	it, err := heldBy(tx, req.Param("id"), ctx.Actor.ID)
	if err != nil {
		return service.Response{}, err
	}
	// Read the item's earlier listing, if any, before overwriting it: a
	// write that no read preceded is not conflict-checked on L1.
	if old, ok, err := service.Lookup[Listing](tx, ListingKey(it.ID)); err != nil {
		return service.Response{}, err
	} else if ok && old.State == ListingOpen {
		return service.Response{}, fmt.Errorf("item %s is %s but its listing is open", it.ID, it.State)
	}
	l := &Listing{Item: it.ID, Kind: it.Kind, Seller: ctx.Actor.ID, Price: *body.Price, State: ListingOpen, ListedAt: ctx.Time}
	it.State, it.UpdatedAt = StateListed, ctx.Time
	tx.PutJSON(ItemKey(it.ID), it)
	tx.PutJSON(ListingKey(it.ID), l)
	return service.JSON(http.StatusCreated, map[string]*Listing{"listing": l}), nil
}

// listedItem loads the item of an open listing l, which must be listed by
// l's seller: anything else is a broken invariant.
func listedItem(tx *service.Tx, l *Listing) (*Item, error) {
	it, err := loadItem(tx, l.Item)
	if err != nil {
		return nil, fmt.Errorf("open listing %s: %w", l.Item, err)
	}
	if it.State != StateListed || it.Owner != l.Seller {
		return nil, fmt.Errorf("open listing %s: item is %s by %q", l.Item, it.State, it.Owner)
	}
	return it, nil
}

func cancel(tx *service.Tx, ctx *service.Context, req *service.Request) (service.Response, error) {
	var body struct{}
	if err := req.DecodeOptional(&body); err != nil {
		return service.Response{}, err
	}
	l, err := loadListing(tx, req.Param("id"))
	if err != nil {
		return service.Response{}, err
	}
	if l.Seller != ctx.Actor.ID {
		return service.Response{}, service.Forbidden("listing %s is %s's", l.Item, l.Seller)
	}
	if l.State != ListingOpen {
		return service.Response{}, closedListing(l)
	}
	it, err := listedItem(tx, l)
	if err != nil {
		return service.Response{}, err
	}
	l.State, l.ClosedAt = ListingCancelled, ctx.Time
	it.State, it.UpdatedAt = StateHeld, ctx.Time
	tx.PutJSON(ItemKey(it.ID), it)
	tx.PutJSON(ListingKey(l.Item), l)
	return service.JSON(http.StatusOK, map[string]*Listing{"listing": l}), nil
}

// buy moves the price from the buyer's wallet to the seller's, the item to
// the buyer, and closes the listing: four keys in one op. The buyer names
// the price it agrees to, so a listing cancelled and listed again at
// another price is not bought by mistake.
func buy(tx *service.Tx, ctx *service.Context, req *service.Request) (service.Response, error) {
	var body PriceRequest
	if err := req.Decode(&body); err != nil {
		return service.Response{}, err
	}
	if err := checkAmount("price", body.Price); err != nil {
		return service.Response{}, err
	}
	l, err := loadListing(tx, req.Param("id"))
	if err != nil {
		return service.Response{}, err
	}
	if l.State != ListingOpen {
		return service.Response{}, closedListing(l)
	}
	if l.Seller == ctx.Actor.ID {
		return service.Response{}, service.Forbidden("listing %s is your own: cancel it instead", l.Item)
	}
	if *body.Price != l.Price {
		return service.Response{}, service.Precondition("listing %s costs %d coins, not %d", l.Item, l.Price, *body.Price)
	}
	buyer, err := loadWallet(tx, ctx.Actor.ID)
	if err != nil {
		return service.Response{}, err
	}
	if buyer.Coins < l.Price {
		return service.Response{}, service.Precondition("insufficient coins: wallet of %s holds %d, listing %s costs %d",
			buyer.Player, buyer.Coins, l.Item, l.Price)
	}
	seller, err := loadWallet(tx, l.Seller)
	if err != nil {
		return service.Response{}, err
	}
	if seller.Coins+l.Price > MaxBalance {
		return service.Response{}, service.Precondition("wallet of seller %s would pass the limit of %d coins", l.Seller, uint64(MaxBalance))
	}
	it, err := listedItem(tx, l)
	if err != nil {
		return service.Response{}, err
	}
	buyer.Coins -= l.Price
	seller.Coins += l.Price
	it.Owner, it.State, it.UpdatedAt = ctx.Actor.ID, StateHeld, ctx.Time
	l.State, l.Buyer, l.ClosedAt = ListingSold, ctx.Actor.ID, ctx.Time
	tx.PutJSON(WalletKey(buyer.Player), buyer)
	tx.PutJSON(WalletKey(seller.Player), seller)
	tx.PutJSON(ItemKey(it.ID), it)
	tx.PutJSON(ListingKey(l.Item), l)
	return service.JSON(http.StatusOK, Purchase{Listing: l, Item: it, Wallet: buyer}), nil
}

// craft consumes the input items, which must be the player's own, free,
// and exactly the recipe's ingredients, and creates the output item.
func craft(tx *service.Tx, ctx *service.Context, req *service.Request) (service.Response, error) {
	var body CraftRequest
	if err := req.Decode(&body); err != nil {
		return service.Response{}, err
	}
	if err := checkIDs("inputs", body.Inputs, MaxCraftInputs); err != nil {
		return service.Response{}, err
	}
	if err := service.CheckID("output", body.Output); err != nil {
		return service.Response{}, err
	}
	if err := checkName("name", body.Name); err != nil {
		return service.Response{}, err
	}
	r, err := loadRecipe(tx, req.Param("id"))
	if err != nil {
		return service.Response{}, err
	}
	inputs := make([]*Item, len(body.Inputs))
	count := map[string]int{}
	for i, id := range body.Inputs {
		if inputs[i], err = heldBy(tx, id, ctx.Actor.ID); err != nil {
			return service.Response{}, err
		}
		count[inputs[i].Kind]++
	}
	got := make([]Ingredient, 0, len(count))
	for kind, n := range count {
		got = append(got, Ingredient{Kind: kind, Qty: n})
	}
	slices.SortFunc(got, func(a, b Ingredient) int { return strings.Compare(a.Kind, b.Kind) })
	if !slices.Equal(got, r.Inputs) {
		return service.Response{}, service.Invalid("recipe %s takes %s; the inputs are %s", r.ID, ingredients(r.Inputs), ingredients(got))
	}
	if _, exists := tx.Get(ItemKey(body.Output)); exists {
		return service.Response{}, service.Conflict("item %s already exists", body.Output)
	}
	out := &Item{ID: body.Output, Kind: r.Output, Name: body.Name, Owner: ctx.Actor.ID, State: StateHeld,
		CreatedBy: ctx.Actor.ID, CreatedAt: ctx.Time, Recipe: r.ID, CraftedFrom: body.Inputs, UpdatedAt: ctx.Time}
	for _, it := range inputs {
		it.State, it.ConsumedInto, it.UpdatedAt = StateConsumed, out.ID, ctx.Time
		tx.PutJSON(ItemKey(it.ID), it)
	}
	tx.PutJSON(ItemKey(out.ID), out)
	return service.JSON(http.StatusCreated, map[string]*Item{"item": out}), nil
}

// ingredients formats a sorted list of ingredients: "2 iron-ingot, 1 coal".
func ingredients(in []Ingredient) string {
	s := make([]string, len(in))
	for i, g := range in {
		s[i] = fmt.Sprintf("%d %s", g.Qty, g.Kind)
	}
	return strings.Join(s, ", ")
}

func getItem(tx *service.Tx, ctx *service.Context, req *service.Request) (service.Response, error) {
	it, err := loadItem(tx, req.Param("id"))
	if err != nil {
		return service.Response{}, err
	}
	return service.JSON(http.StatusOK, map[string]*Item{"item": it}), nil
}

func getListing(tx *service.Tx, ctx *service.Context, req *service.Request) (service.Response, error) {
	l, err := loadListing(tx, req.Param("id"))
	if err != nil {
		return service.Response{}, err
	}
	return service.JSON(http.StatusOK, map[string]*Listing{"listing": l}), nil
}

// getWallet answers a registered player's wallet, 0 coins if it has none.
func getWallet(tx *service.Tx, ctx *service.Context, req *service.Request) (service.Response, error) {
	player := req.Param("player")
	if err := service.CheckID("player", player); err != nil {
		return service.Response{}, err
	}
	w, ok, err := service.Lookup[Wallet](tx, WalletKey(player))
	if err != nil {
		return service.Response{}, err
	}
	if !ok {
		if err := loadPlayer(tx, "player", player); err != nil {
			return service.Response{}, err
		}
		w = &Wallet{Player: player}
	}
	return service.JSON(http.StatusOK, map[string]*Wallet{"wallet": w}), nil
}

func getRecipe(tx *service.Tx, ctx *service.Context, req *service.Request) (service.Response, error) {
	r, err := loadRecipe(tx, req.Param("id"))
	if err != nil {
		return service.Response{}, err
	}
	return service.JSON(http.StatusOK, map[string]*Recipe{"recipe": r}), nil
}

// Genesis is the application part of the genesis state ("app" in
// service.Genesis): recipes, and the starting coins of players, who must
// be among the genesis actors.
type Genesis struct {
	Recipes []RecipeSpec `json:"recipes,omitempty"`
	Wallets []Wallet     `json:"wallets,omitempty"`
}

func loadGenesis(tx *service.Tx, raw json.RawMessage) error {
	var g Genesis
	if err := service.DecodeJSON(raw, &g); err != nil {
		return fmt.Errorf("assets genesis: %w", err)
	}
	for _, spec := range g.Recipes {
		r, err := newRecipe(spec)
		if err != nil {
			return fmt.Errorf("assets genesis: recipe %q: %w", spec.ID, err)
		}
		if _, exists := tx.Get(RecipeKey(r.ID)); exists {
			return fmt.Errorf("assets genesis: recipe %s: duplicate", r.ID)
		}
		tx.PutJSON(RecipeKey(r.ID), r)
	}
	for _, w := range g.Wallets {
		if err := loadPlayer(tx, "player", w.Player); err != nil {
			return fmt.Errorf("assets genesis: wallet %q: %w", w.Player, err)
		}
		if w.Coins > MaxBalance {
			return fmt.Errorf("assets genesis: wallet %s: %d coins, over the limit of %d", w.Player, w.Coins, uint64(MaxBalance))
		}
		if _, exists := tx.Get(WalletKey(w.Player)); exists {
			return fmt.Errorf("assets genesis: wallet %s: duplicate", w.Player)
		}
		tx.PutJSON(WalletKey(w.Player), w)
	}
	return nil
}
