package assets

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/duet-bft/duet/service"
)

//go:embed openapi.json
var openAPI []byte

// App is the game-assets application as duet carries it (duet up --app
// assets).
var App = &service.App{
	Name:     "assets",
	Version:  "1.0.0",
	Summary:  "game assets in a shared world: gamemasters mint items and recipes, players claim, craft, trade and buy them for coins",
	Registry: New(),
	DemoActors: []service.DemoActor{
		{Role: RoleGamemaster, Org: "lumen-studios"}, {Role: RoleGamemaster, Org: "lumen-live-ops"},
		{Role: RolePlayer, Org: "guild-aurora"}, {Role: RolePlayer, Org: "guild-aurora"},
		{Role: RolePlayer, Org: "guild-ember"}, {Role: RolePlayer, Org: "guild-ember"},
	},
	DemoGenesis: DemoGenesis,
	OpenAPI:     openAPI,
	Workload:    &service.Workload{Role: RolePlayer, Iteration: iteration},
}

func init() { service.RegisterApp(App) }

// DemoCoins is what every player of a demo network starts with.
const DemoCoins = 1000

// DemoRecipes are the recipes of a demo network. The Workload crafts
// "iron-sword".
var DemoRecipes = []RecipeSpec{
	{ID: "iron-sword", Inputs: []Ingredient{{Kind: "iron-ingot", Qty: 1}, {Kind: "oak-plank", Qty: 1}}, Output: "iron-sword"},
	{ID: "steel-ingot", Inputs: []Ingredient{{Kind: "coal", Qty: 1}, {Kind: "iron-ingot", Qty: 2}}, Output: "steel-ingot"},
	{ID: "steel-sword", Inputs: []Ingredient{{Kind: "leather-strip", Qty: 1}, {Kind: "oak-plank", Qty: 1}, {Kind: "steel-ingot", Qty: 2}}, Output: "steel-sword"},
	{ID: "health-potion", Inputs: []Ingredient{{Kind: "herb", Qty: 2}, {Kind: "water-flask", Qty: 1}}, Output: "health-potion"},
}

// DemoGenesis is the genesis of a demo network: the DemoRecipes, and
// DemoCoins in the wallet of every player actor.
func DemoGenesis(actors []service.Actor) json.RawMessage {
	g := Genesis{Recipes: DemoRecipes}
	for _, a := range actors {
		if a.Role == RolePlayer {
			g.Wallets = append(g.Wallets, Wallet{Player: a.ID, Coins: DemoCoins})
		}
	}
	return service.MustJSON(g)
}

// BenchPrice is what the Workload lists each crafted sword for.
const BenchPrice = 100

// iteration is a player's crafting session. A gamemaster first drops two
// items of loot (prep); the player's session claims them at its start,
// picks both up, crafts an iron sword from them (the recipe comes from the
// genesis) and lists the sword for sale.
//
// Every key the session reads or writes is the iteration's own: its loot,
// its sword and the sword's listing, and the recipe, which no session
// writes. Sessions of the same player can therefore run side by side on
// one node (duet bench's throughput mode does); touching the player's
// wallet would serialise them.
func iteration(run string, i int) service.Iteration {
	base := fmt.Sprintf("A%s-%d", run, i)
	ingot, plank, sword := base+"-ingot", base+"-plank", base+"-sword"
	return service.Iteration{
		Prep: []service.BenchOp{{Name: "mint", Role: RoleGamemaster, Method: http.MethodPost, Path: PathItems,
			Body: service.MustJSON(MintRequest{Items: []NewItem{{ID: ingot, Kind: "iron-ingot"}, {ID: plank, Kind: "oak-plank"}}})}},
		Start: service.MustJSON(map[string]any{"items": []string{ingot, plank}}),
		Steps: []service.BenchOp{
			{Name: "claim-ingot", Method: http.MethodPost, Path: PathItems + "/" + ingot + "/claim"},
			{Name: "claim-plank", Method: http.MethodPost, Path: PathItems + "/" + plank + "/claim"},
			{Name: "craft", Method: http.MethodPost, Path: PathRecipes + "/iron-sword/craft",
				Body: service.MustJSON(CraftRequest{Inputs: []string{ingot, plank}, Output: sword})},
			{Name: "list", Method: http.MethodPost, Path: PathItems + "/" + sword + "/list",
				Body: []byte(fmt.Sprintf(`{"price":%d}`, BenchPrice))},
		},
	}
}
