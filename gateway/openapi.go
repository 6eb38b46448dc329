package gateway

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/duet-bft/duet/service"
)

// Framework is the OpenAPI document of the framework's own routes:
// sessions, actors, the node, health and metrics. OpenAPI merges an app's
// fragment into it.
//
//go:embed openapi.json
var Framework []byte

// OpenAPI returns the document a node of app serves at /v1/openapi.json:
// the framework's document with the app's fragment merged in (its paths,
// components and tags, and its description after the framework's). A path,
// component or tag the framework has already is an error: an app
// documents its own routes, never the framework's.
func OpenAPI(app *service.App) ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(Framework, &doc); err != nil {
		return nil, fmt.Errorf("gateway: framework openapi.json: %w", err)
	}
	info := doc["info"].(map[string]any)
	info["title"] = "duet L2 node: " + app.Name
	info["x-duet-app"] = map[string]string{"name": app.Name, "version": app.Version}
	if app.OpenAPI == nil {
		return json.MarshalIndent(doc, "", "  ")
	}
	var frag struct {
		Info       struct{ Description string } `json:"info"`
		Tags       []any                        `json:"tags"`
		Paths      map[string]any               `json:"paths"`
		Components map[string]map[string]any    `json:"components"`
	}
	if err := json.Unmarshal(app.OpenAPI, &frag); err != nil {
		return nil, fmt.Errorf("gateway: app %s: OpenAPI fragment: %w", app.Name, err)
	}
	if frag.Info.Description != "" {
		info["description"] = info["description"].(string) + "\n\n" + frag.Info.Description
	}
	paths := doc["paths"].(map[string]any)
	for k, v := range frag.Paths {
		if _, dup := paths[k]; dup {
			return nil, fmt.Errorf("gateway: app %s documents the framework's path %s", app.Name, k)
		}
		paths[k] = v
	}
	comps := doc["components"].(map[string]any)
	for kind, m := range frag.Components {
		have, _ := comps[kind].(map[string]any)
		if have == nil {
			have = map[string]any{}
			comps[kind] = have
		}
		for k, v := range m {
			if _, dup := have[k]; dup {
				return nil, fmt.Errorf("gateway: app %s redefines the framework's component %s/%s", app.Name, kind, k)
			}
			have[k] = v
		}
	}
	tags, _ := doc["tags"].([]any)
	for _, t := range frag.Tags {
		name := t.(map[string]any)["name"]
		if slices.ContainsFunc(tags, func(o any) bool { return o.(map[string]any)["name"] == name }) {
			return nil, fmt.Errorf("gateway: app %s redefines the framework's tag %v", app.Name, name)
		}
		tags = append(tags, t)
	}
	doc["tags"] = tags
	return json.MarshalIndent(doc, "", "  ")
}
