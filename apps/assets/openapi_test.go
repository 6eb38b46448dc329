package assets_test

import (
	"testing"

	"github.com/duet-bft/duet/apps/assets"
	"github.com/duet-bft/duet/duettest"
)

// TestOpenAPI checks the document an assets node serves (the framework's
// merged with the app's fragment): every route documented and nothing
// else, signed ops with their headers and receipts, every $ref resolving,
// and schemas that match the Go types field for field.
func TestOpenAPI(t *testing.T) {
	duettest.CheckOpenAPI(t, assets.App, map[string]any{
		"Item":            assets.Item{},
		"NewItem":         assets.NewItem{},
		"Listing":         assets.Listing{},
		"Wallet":          assets.Wallet{},
		"Ingredient":      assets.Ingredient{},
		"RecipeSpec":      assets.RecipeSpec{},
		"Recipe":          assets.Recipe{},
		"Purchase":        assets.Purchase{},
		"MintRequest":     assets.MintRequest{},
		"GrantRequest":    assets.GrantRequest{},
		"TransferRequest": assets.TransferRequest{},
		"PriceRequest":    assets.PriceRequest{},
		"CraftRequest":    assets.CraftRequest{},
		"EmptyRequest":    struct{}{},
		"ItemResponse": struct {
			Item *assets.Item `json:"item"`
		}{},
		"ItemsResponse": struct {
			Items []assets.Item `json:"items"`
		}{},
		"ListingResponse": struct {
			Listing *assets.Listing `json:"listing"`
		}{},
		"WalletResponse": struct {
			Wallet *assets.Wallet `json:"wallet"`
		}{},
		"RecipeResponse": struct {
			Recipe *assets.Recipe `json:"recipe"`
		}{},
	})
}
