package gateway_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/duet-bft/duet/apps/supplychain"
	"github.com/duet-bft/duet/gateway"
	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service"
)

// gatewayRoutes are the routes the gateway serves itself, outside the
// application's registry. Keep in step with gateway.New.
var gatewayRoutes = []struct{ Method, Pattern string }{
	{http.MethodGet, "/healthz"},
	{http.MethodGet, "/readyz"},
	{http.MethodGet, "/metrics"},
	{http.MethodGet, "/v1/openapi.json"},
	{http.MethodGet, "/v1/node"},
	{http.MethodGet, "/v1/sessions/{id}"},
	{http.MethodGet, "/v1/sessions/{id}/events"},
}

// signedHeaders are the reusable parameters every signed op must list.
var signedHeaders = []string{
	"#/components/parameters/DuetActor",
	"#/components/parameters/DuetSession",
	"#/components/parameters/DuetSeq",
	"#/components/parameters/DuetSignature",
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

type document struct {
	OpenAPI    string                                `json:"openapi"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas map[string]schema `json:"schemas"`
	} `json:"components"`
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
	Ref        string            `json:"$ref"`
	Properties map[string]schema `json:"properties"`
	Required   []string          `json:"required"`
}

func loadDocument(t *testing.T) *document {
	t.Helper()
	if !json.Valid(gateway.OpenAPI) {
		t.Fatal("the embedded openapi.json is not valid JSON")
	}
	var doc document
	if err := json.Unmarshal(gateway.OpenAPI, &doc); err != nil {
		t.Fatalf("decode openapi.json: %v", err)
	}
	return &doc
}

func (d *document) operation(t *testing.T, method, pattern string) (*operation, bool) {
	t.Helper()
	raw, ok := d.Paths[pattern][strings.ToLower(method)]
	if !ok {
		return nil, false
	}
	var op operation
	if err := json.Unmarshal(raw, &op); err != nil {
		t.Fatalf("decode %s %s: %v", method, pattern, err)
	}
	return &op, true
}

func TestOpenAPIDocument(t *testing.T) {
	doc := loadDocument(t)
	if !regexp.MustCompile(`^3\.1\.\d+$`).MatchString(doc.OpenAPI) {
		t.Errorf("openapi = %q, want 3.1.x", doc.OpenAPI)
	}
	// Every local $ref resolves.
	var root any
	if err := json.Unmarshal(gateway.OpenAPI, &root); err != nil {
		t.Fatal(err)
	}
	var walk func(v any, at string)
	walk = func(v any, at string) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				if !resolves(root, ref) {
					t.Errorf("%s: $ref %q does not resolve", at, ref)
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
	walk(root, "#")
}

func resolves(root any, ref string) bool {
	p, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return false
	}
	v := root
	for _, seg := range strings.Split(p, "/") {
		seg = strings.NewReplacer("~1", "/", "~0", "~").Replace(seg)
		m, ok := v.(map[string]any)
		if !ok {
			return false
		}
		if v, ok = m[seg]; !ok {
			return false
		}
	}
	return true
}

// TestOpenAPIRoutes fails when a route is served but not documented, or
// documented but not served.
func TestOpenAPIRoutes(t *testing.T) {
	doc := loadDocument(t)
	served := map[string]bool{}
	for _, r := range gatewayRoutes {
		served[r.Method+" "+r.Pattern] = true
		if _, ok := doc.operation(t, r.Method, r.Pattern); !ok {
			t.Errorf("gateway route %s %s is not in openapi.json paths", r.Method, r.Pattern)
		}
	}
	for _, r := range supplychain.New().Routes() {
		served[r.Method+" "+r.Pattern] = true
		op, ok := doc.operation(t, r.Method, r.Pattern)
		if !ok {
			t.Errorf("registry route %s %s is not in openapi.json paths", r.Method, r.Pattern)
			continue
		}
		if r.Method == http.MethodGet {
			continue
		}
		// A mutating route is a signed op: the four headers, and the
		// node's receipt on success.
		var refs []string
		for _, p := range op.Parameters {
			refs = append(refs, p.Ref)
		}
		for _, h := range signedHeaders {
			if !slices.Contains(refs, h) {
				t.Errorf("%s %s: parameters lack %s", r.Method, r.Pattern, h)
			}
		}
		for status, resp := range op.Responses {
			if strings.HasPrefix(status, "2") && resp.Headers["Duet-Receipt"] == nil {
				t.Errorf("%s %s: response %s lacks the Duet-Receipt header", r.Method, r.Pattern, status)
			}
		}
	}
	for pattern, item := range doc.Paths {
		for key := range item {
			if slices.Contains(httpMethods, key) && !served[strings.ToUpper(key)+" "+pattern] {
				t.Errorf("openapi.json documents %s %s, which no route serves", strings.ToUpper(key), pattern)
			}
		}
	}
}

// TestOpenAPISchemas checks that each documented schema has exactly the JSON
// fields of its Go type, with every field that is always present (no
// omitempty) marked required.
func TestOpenAPISchemas(t *testing.T) {
	doc := loadDocument(t)
	types := map[string]any{
		"Error":        service.ErrorBody{},
		"Receipt":      gateway.Receipt{},
		"SessionInfo":  service.SessionInfo{},
		"SessionView":  protocol.SessionView{},
		"OpResult":     protocol.OpResult{},
		"SessionEvent": protocol.Event{},
		"Actor":        service.Actor{},
		"Item":         supplychain.Item{},
		"ObservedItem": supplychain.ObservedItem{},
		"Discrepancy":  supplychain.Discrepancy{},
		"Package":      supplychain.Package{},
		"PackageEvent": supplychain.Event{},
		"Validation":   supplychain.Validation{},
		"QC":           supplychain.QC{},
		"Label":        supplychain.Label{},
		"Courier":      supplychain.Courier{},
	}
	// Final has its own JSON encoding: compare what it produces.
	raw, _ := json.Marshal(protocol.Final{Status: "rejected", Height: 1, TxHash: "T", Code: "C", Reason: "R"})
	var enc map[string]json.RawMessage
	json.Unmarshal(raw, &enc)
	for k := range enc {
		if _, ok := doc.Components.Schemas["Final"].Properties[k]; !ok {
			t.Errorf("Final: encodes field %q the schema lacks", k)
		}
	}
	if got, want := len(doc.Components.Schemas["Final"].Properties), len(enc); got != want {
		t.Errorf("Final: schema has %d properties, the encoding %d", got, want)
	}
	for name, v := range types {
		s, ok := doc.Components.Schemas[name]
		if !ok {
			t.Errorf("components.schemas.%s is missing", name)
			continue
		}
		compareFields(t, name, reflect.TypeOf(v), s)
	}
}

func compareFields(t *testing.T, at string, typ reflect.Type, s schema) {
	t.Helper()
	fields := jsonFields(typ)
	var names, required []string
	for _, f := range fields {
		names = append(names, f.name)
		if f.always {
			required = append(required, f.name)
		}
		prop, ok := s.Properties[f.name]
		ft := f.typ
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ok && prop.Properties != nil && ft.Kind() == reflect.Struct {
			compareFields(t, at+"."+f.name, ft, prop)
		}
	}
	var documented []string
	for k := range s.Properties {
		documented = append(documented, k)
	}
	slices.Sort(names)
	slices.Sort(documented)
	if !slices.Equal(documented, names) {
		t.Errorf("%s: got properties %v, want the JSON fields %v", at, documented, names)
	}
	req := slices.Clone(s.Required)
	slices.Sort(req)
	slices.Sort(required)
	if !slices.Equal(req, required) {
		t.Errorf("%s: got required %v, want the fields without omitempty %v", at, req, required)
	}
}

type jsonField struct {
	name   string
	always bool // no omitempty/omitzero: present in every encoding
	typ    reflect.Type
}

// jsonFields lists the fields encoding/json writes for a struct type.
func jsonFields(typ reflect.Type) []jsonField {
	var out []jsonField
	for i := range typ.NumField() {
		f := typ.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			et := f.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				out = append(out, jsonFields(et)...)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		optional := slices.ContainsFunc(strings.Split(opts, ","), func(o string) bool { return o == "omitempty" || o == "omitzero" })
		out = append(out, jsonField{name: name, always: !optional, typ: f.Type})
	}
	return out
}
