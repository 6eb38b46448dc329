package gateway_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/duet-bft/duet/apps/supplychain"
	"github.com/duet-bft/duet/duettest"
	"github.com/duet-bft/duet/gateway"
	"github.com/duet-bft/duet/service"
)

// TestOpenAPIDocument checks the document a supply-chain node serves: the
// framework's routes and schemas, and the app's.
func TestOpenAPIDocument(t *testing.T) {
	duettest.CheckOpenAPI(t, supplychain.App, map[string]any{
		"Item":         supplychain.Item{},
		"ObservedItem": supplychain.ObservedItem{},
		"Discrepancy":  supplychain.Discrepancy{},
		"Package":      supplychain.Package{},
		"PackageEvent": supplychain.Event{},
		"Validation":   supplychain.Validation{},
		"QC":           supplychain.QC{},
		"Label":        supplychain.Label{},
		"Courier":      supplychain.Courier{},
	})
}

// TestOpenAPIMerge: an app's fragment adds its own paths, components and
// tags, and may take nothing of the framework's.
func TestOpenAPIMerge(t *testing.T) {
	app := func(frag string) *service.App {
		return &service.App{Name: "x", Version: "1", Registry: service.NewRegistry(), OpenAPI: []byte(frag)}
	}
	raw, err := gateway.OpenAPI(app(`{"info":{"description":"the x app"},"tags":[{"name":"x"}],
		"paths":{"/v1/x":{"get":{}}},"components":{"schemas":{"X":{"type":"object"}},"examples":{"E":{}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Info struct {
			Title       string            `json:"title"`
			Description string            `json:"description"`
			App         map[string]string `json:"x-duet-app"`
		} `json:"info"`
		Tags       []struct{ Name string }               `json:"tags"`
		Paths      map[string]any                        `json:"paths"`
		Components map[string]map[string]json.RawMessage `json:"components"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Paths["/v1/x"] == nil || doc.Paths["/v1/sessions"] == nil || doc.Components["schemas"]["X"] == nil ||
		doc.Components["schemas"]["Error"] == nil || doc.Components["examples"]["E"] == nil {
		t.Errorf("merged document lacks the app's or the framework's parts: paths %v", doc.Paths)
	}
	if !strings.HasSuffix(doc.Info.Description, "\n\nthe x app") || doc.Info.App["name"] != "x" || doc.Info.App["version"] != "1" ||
		doc.Info.Title != "duet L2 node: x" || doc.Tags[len(doc.Tags)-1].Name != "x" {
		t.Errorf("info %+v, tags %v", doc.Info, doc.Tags)
	}
	for name, frag := range map[string]string{
		"framework path":   `{"paths":{"/v1/sessions":{}}}`,
		"framework schema": `{"components":{"schemas":{"Error":{}}}}`,
		"framework tag":    `{"tags":[{"name":"sessions"}]}`,
		"not JSON":         `{`,
	} {
		if _, err := gateway.OpenAPI(app(frag)); err == nil {
			t.Errorf("%s: merged without an error", name)
		}
	}
	if _, err := gateway.OpenAPI(&service.App{Name: "bare", Version: "1", Registry: service.NewRegistry()}); err != nil {
		t.Errorf("app without a fragment: %v", err)
	}
}
