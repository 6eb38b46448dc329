package duettest

import (
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/duet-bft/duet/gateway"
	"github.com/duet-bft/duet/ledger"
	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service"
)

// CheckOpenAPI checks the document an L2 node of app serves
// (gateway.OpenAPI): it merges; it is OpenAPI 3.1; every $ref resolves;
// every route is documented (the gateway's own and every route of the
// app's registry) and every documented route is served; every signed op
// lists the Duet-* headers and its successes carry Duet-Receipt; and each
// schema named in types (the app's: schema name to a value of its Go type)
// and each of the framework's has exactly the JSON fields of its Go type,
// with those always present marked required.
func CheckOpenAPI(t testing.TB, app *service.App, types map[string]any) {
	t.Helper()
	raw, err := gateway.OpenAPI(app)
	if err != nil {
		t.Fatalf("OpenAPI(%s): %v", app.Name, err)
	}
	var doc document
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("decode the OpenAPI document of %s: %v", app.Name, err)
	}
	if !regexp.MustCompile(`^3\.1\.\d+$`).MatchString(doc.OpenAPI) {
		t.Errorf("openapi = %q, want 3.1.x", doc.OpenAPI)
	}
	checkRefs(t, raw)
	checkRoutes(t, app, &doc)
	all := map[string]any{
		"Error":        service.ErrorBody{},
		"Receipt":      gateway.Receipt{},
		"SessionInfo":  service.SessionInfo{},
		"SessionView":  protocol.SessionView{},
		"OpResult":     protocol.OpResult{},
		"SessionEvent": protocol.Event{},
		"Actor":        service.Actor{},
		"NetworkView":  gateway.NetworkView{},
		"Evidence":     ledger.Evidence{},
	}
	for k, v := range types {
		all[k] = v
	}
	// Final has its own JSON encoding: compare what it produces.
	enc := map[string]json.RawMessage{}
	json.Unmarshal(service.MustJSON(protocol.Final{Status: "rejected", Height: 1, TxHash: "T", Code: "C", Reason: "R"}), &enc)
	for k := range enc {
		if _, ok := doc.Components.Schemas["Final"].Properties[k]; !ok {
			t.Errorf("Final: encodes field %q the schema lacks", k)
		}
	}
	if got, want := len(doc.Components.Schemas["Final"].Properties), len(enc); got != want {
		t.Errorf("Final: schema has %d properties, the encoding %d", got, want)
	}
	for name, v := range all {
		s, ok := doc.Components.Schemas[name]
		if !ok {
			t.Errorf("components.schemas.%s is missing", name)
			continue
		}
		compareFields(t, name, reflect.TypeOf(v), s)
	}
}

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

// signedHeaders are the parameters every signed op must list.
var signedHeaders = []string{
	"#/components/parameters/DuetActor",
	"#/components/parameters/DuetSession",
	"#/components/parameters/DuetSeq",
	"#/components/parameters/DuetExpires",
	"#/components/parameters/DuetSignature",
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

func (d *document) operation(t testing.TB, method, pattern string) (*operation, bool) {
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

func checkRefs(t testing.TB, raw []byte) {
	t.Helper()
	var root any
	if err := json.Unmarshal(raw, &root); err != nil {
		t.Fatal(err)
	}
	var walk func(v any, at string)
	walk = func(v any, at string) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok && !resolves(root, ref) {
				t.Errorf("%s: $ref %q does not resolve", at, ref)
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

func checkRoutes(t testing.TB, app *service.App, doc *document) {
	t.Helper()
	served := map[string]bool{}
	for _, r := range gateway.Routes() {
		served[r[0]+" "+r[1]] = true
		if _, ok := doc.operation(t, r[0], r[1]); !ok {
			t.Errorf("gateway route %s %s is not documented", r[0], r[1])
		}
	}
	if c := app.Certificates; c != nil {
		served[http.MethodGet+" "+c.Path] = true
		if _, ok := doc.operation(t, http.MethodGet, c.Path); !ok {
			t.Errorf("certificate route GET %s is not documented", c.Path)
		}
	}
	for _, r := range app.Registry.Routes() {
		served[r.Method+" "+r.Pattern] = true
		op, ok := doc.operation(t, r.Method, r.Pattern)
		if !ok {
			t.Errorf("registry route %s %s is not documented", r.Method, r.Pattern)
			continue
		}
		if r.Method == http.MethodGet {
			continue
		}
		// A mutating route is a signed op: the signed-op headers, and
		// the node's receipt on success.
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
				t.Errorf("the document has %s %s, which no route serves", strings.ToUpper(key), pattern)
			}
		}
	}
}

func compareFields(t testing.TB, at string, typ reflect.Type, s schema) {
	t.Helper()
	var names, required []string
	for _, f := range jsonFields(typ) {
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
