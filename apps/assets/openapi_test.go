package assets_test

import (
	"encoding/json"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/duet-bft/duet/apps/assets"
	"github.com/duet-bft/duet/service"
)

// The checks the gateway makes of the framework's document, made here of
// the app's fragment: every route documented and nothing else, signed ops
// with their headers and receipts, every $ref resolving (in the fragment
// or the framework's document), no name taken from the framework, and
// schemas that match the Go types field for field.

type fragment struct {
	Info struct {
		Description string `json:"description"`
	} `json:"info"`
	Tags []struct {
		Name string `json:"name"`
	} `json:"tags"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components map[string]map[string]json.RawMessage `json:"components"`
}

type operation struct {
	Parameters []struct {
		Ref string `json:"$ref"`
	} `json:"parameters"`
	Responses map[string]struct {
		Ref     string                     `json:"$ref"`
		Headers map[string]json.RawMessage `json:"headers"`
	} `json:"responses"`
}

type schema struct {
	Properties map[string]schema `json:"properties"`
	Required   []string          `json:"required"`
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

var signedParams = []string{"DuetActor", "DuetSession", "DuetSeq", "DuetExpires", "DuetSignature"}

func loadFragment(t *testing.T) (frag fragment, raw any, framework map[string]any) {
	t.Helper()
	if err := json.Unmarshal(assets.App.OpenAPI, &frag); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	json.Unmarshal(assets.App.OpenAPI, &raw)
	fw, err := os.ReadFile("../../gateway/openapi.json")
	if err != nil {
		t.Fatalf("the framework's document: %v", err)
	}
	if err := json.Unmarshal(fw, &framework); err != nil {
		t.Fatalf("the framework's document: %v", err)
	}
	return frag, raw, framework
}

func TestOpenAPIRoutes(t *testing.T) {
	frag, _, _ := loadFragment(t)
	if frag.Info.Description == "" {
		t.Error("info.description is empty")
	}
	served := map[string]bool{}
	for _, r := range assets.App.Registry.Routes() {
		if service.FrameworkPath(r.Pattern) {
			continue
		}
		served[r.Method+" "+r.Pattern] = true
		item, ok := frag.Paths[r.Pattern]
		raw, ok2 := item[strings.ToLower(r.Method)]
		if !ok || !ok2 {
			t.Errorf("route %s %s is not documented", r.Method, r.Pattern)
			continue
		}
		// Every path parameter is declared, by its name.
		var params []struct {
			Ref string `json:"$ref"`
		}
		json.Unmarshal(item["parameters"], &params)
		for _, seg := range strings.Split(r.Pattern, "/") {
			if !strings.HasPrefix(seg, "{") {
				continue
			}
			name := strings.Trim(seg, "{}")
			if !slices.ContainsFunc(params, func(p struct {
				Ref string `json:"$ref"`
			}) bool {
				var decl struct{ Name, In string }
				json.Unmarshal(frag.Components["parameters"][strings.TrimPrefix(p.Ref, "#/components/parameters/")], &decl)
				return decl.Name == name && decl.In == "path"
			}) {
				t.Errorf("%s %s: path parameter %s is not declared", r.Method, r.Pattern, name)
			}
		}
		if r.Method == http.MethodGet {
			continue
		}
		var op operation
		if err := json.Unmarshal(raw, &op); err != nil {
			t.Fatalf("%s %s: %v", r.Method, r.Pattern, err)
		}
		for _, p := range signedParams {
			if !slices.ContainsFunc(op.Parameters, func(x struct {
				Ref string `json:"$ref"`
			}) bool {
				return x.Ref == "#/components/parameters/"+p
			}) {
				t.Errorf("%s %s: parameters lack %s", r.Method, r.Pattern, p)
			}
		}
		ok2xx := false
		for status, resp := range op.Responses {
			if strings.HasPrefix(status, "2") {
				ok2xx = true
				if resp.Headers["Duet-Receipt"] == nil {
					t.Errorf("%s %s: response %s lacks the Duet-Receipt header", r.Method, r.Pattern, status)
				}
			}
		}
		if !ok2xx {
			t.Errorf("%s %s: no 2xx response", r.Method, r.Pattern)
		}
	}
	for pattern, item := range frag.Paths {
		for key := range item {
			if slices.Contains(httpMethods, key) && !served[strings.ToUpper(key)+" "+pattern] {
				t.Errorf("documents %s %s, which no route serves", strings.ToUpper(key), pattern)
			}
		}
	}
}

func TestOpenAPIRefs(t *testing.T) {
	frag, raw, framework := loadFragment(t)
	fwComps, _ := framework["components"].(map[string]any)
	has := func(kind, name string) bool {
		if _, ok := frag.Components[kind][name]; ok {
			return true
		}
		m, _ := fwComps[kind].(map[string]any)
		_, ok := m[name]
		return ok
	}
	var walk func(v any, at string)
	walk = func(v any, at string) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				kind, name, _ := strings.Cut(strings.TrimPrefix(ref, "#/components/"), "/")
				if !strings.HasPrefix(ref, "#/components/") || !has(kind, name) {
					t.Errorf("%s: $ref %s resolves neither in the fragment nor in the framework's document", at, ref)
				}
			}
			for k, c := range v {
				walk(c, at+"/"+k)
			}
		case []any:
			for _, c := range v {
				walk(c, at)
			}
		}
	}
	walk(raw, "#")

	// Nothing the framework has already (gateway.OpenAPI refuses it).
	for kind, m := range frag.Components {
		fm, _ := fwComps[kind].(map[string]any)
		for name := range m {
			if _, dup := fm[name]; dup {
				t.Errorf("component %s/%s is the framework's", kind, name)
			}
		}
	}
	fwPaths, _ := framework["paths"].(map[string]any)
	for p := range frag.Paths {
		if _, dup := fwPaths[p]; dup || service.FrameworkPath(p) {
			t.Errorf("path %s is the framework's", p)
		}
	}
	fwTags, _ := framework["tags"].([]any)
	for _, tag := range frag.Tags {
		for _, ft := range fwTags {
			if ft.(map[string]any)["name"] == tag.Name {
				t.Errorf("tag %s is the framework's", tag.Name)
			}
		}
	}
}

// TestOpenAPISchemas: each schema has exactly the JSON fields of its Go
// type, the fields without omitempty required.
func TestOpenAPISchemas(t *testing.T) {
	frag, _, _ := loadFragment(t)
	types := map[string]any{
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
	}
	for name, raw := range frag.Components["schemas"] {
		v, ok := types[name]
		if !ok {
			t.Errorf("schema %s has no Go type in this test", name)
			continue
		}
		var s schema
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatalf("schema %s: %v", name, err)
		}
		compareFields(t, name, reflect.TypeOf(v), s)
	}
	for name := range types {
		if _, ok := frag.Components["schemas"][name]; !ok {
			t.Errorf("schema %s is missing", name)
		}
	}
}

func compareFields(t *testing.T, at string, typ reflect.Type, s schema) {
	t.Helper()
	var names, required []string
	for _, f := range jsonFields(typ) {
		names = append(names, f.name)
		if f.always {
			required = append(required, f.name)
		}
	}
	var documented []string
	for k := range s.Properties {
		documented = append(documented, k)
	}
	for _, l := range [][]string{names, required, documented, s.Required} {
		slices.Sort(l)
	}
	if !slices.Equal(documented, names) {
		t.Errorf("%s: got properties %v, want the JSON fields %v", at, documented, names)
	}
	if !slices.Equal(s.Required, required) {
		t.Errorf("%s: got required %v, want the fields without omitempty %v", at, s.Required, required)
	}
}

type jsonField struct {
	name   string
	always bool // no omitempty/omitzero
}

// jsonFields lists the fields encoding/json writes for a struct type,
// those of embedded structs included.
func jsonFields(typ reflect.Type) []jsonField {
	var out []jsonField
	for i := range typ.NumField() {
		f := typ.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			out = append(out, jsonFields(f.Type)...)
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		optional := slices.ContainsFunc(strings.Split(opts, ","), func(o string) bool { return o == "omitempty" || o == "omitzero" })
		out = append(out, jsonField{name: name, always: !optional})
	}
	return out
}
