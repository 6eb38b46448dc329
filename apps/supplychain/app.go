package supplychain

import (
	"crypto/ed25519"
	"embed"
	"encoding/base64"
	"fmt"
	"io/fs"
	"net/http"

	"github.com/duet-bft/duet/service"
)

//go:embed openapi.json
var openAPI []byte

//go:embed console
var consoleFiles embed.FS

// App is the supply chain as duet carries it (duet up --app supplychain,
// the default).
var App = &service.App{
	Name:     "supplychain",
	Version:  "1.0.0",
	Summary:  "warehouse workflow: a supplier's signed manifest, then scan, validate, QC and label in one operator session",
	Registry: New(),
	DemoActors: []service.DemoActor{
		{Role: RoleSupplier, Org: "acme-supply"}, {Role: RoleSupplier, Org: "globex-parts"},
		{Role: RoleOperator, Org: "dc-jakarta"}, {Role: RoleOperator, Org: "dc-surabaya"},
		{Role: RoleCourier, Org: "swift-couriers"}, {Role: RoleCourier, Org: "island-express"},
		{Role: RoleAuditor, Org: "audit-partners"}, {Role: RoleAuditor, Org: "port-authority"},
	},
	DemoGenesis: DemoGenesis,
	OpenAPI:     openAPI,
	Workload:    &service.Workload{Role: RoleOperator, Iteration: iteration},
	Console:     consoleFS(),
	Certificates: &service.Certificates{
		Path:    PathPackages + "/{id}/certificate",
		Subject: certificateSubject,
	},
	Commands: []service.Command{courierCommand},
}

// certificateSubject names the session a package's completion certificate
// is about: the last committed session that wrote the package (after the
// label step, the operator's session that labelled it).
func certificateSubject(st service.Store, id string) (key, actor, session string, ok bool) {
	if service.CheckID("package id", id) != nil {
		return "", "", "", false
	}
	tx := service.NewTx(st)
	p, err := loadPackage(tx, id)
	if err != nil || p.HistoryChunks == 0 {
		return "", "", "", false
	}
	chunk, err := historyChunk(tx, p, p.HistoryChunks-1)
	if err != nil {
		return "", "", "", false
	}
	last := chunk[len(chunk)-1]
	if last.Session == "" {
		return "", "", "", false
	}
	return PackageKey(id), last.Actor, last.Session, true
}

func consoleFS() fs.FS {
	f, err := fs.Sub(consoleFiles, "console")
	if err != nil {
		panic(err)
	}
	return f
}

func init() { service.RegisterApp(App) }

var (
	benchItems    = []Item{{SKU: "SKU-1", Name: "Widget", Qty: 3}, {SKU: "SKU-2", Name: "Gadget", Qty: 1}}
	benchObserved = []ObservedItem{{SKU: "SKU-1", Qty: 3}, {SKU: "SKU-2", Qty: 1}}
)

// iteration is the paper's workflow: a supplier creates a package, then an
// operator's session scans, validates, checks and labels it.
func iteration(run string, i int) service.Iteration {
	pkg := fmt.Sprintf("B%s-%d", run, i)
	path := PathPackages + "/" + pkg
	return service.Iteration{
		Prep: []service.BenchOp{{Name: "create", Role: RoleSupplier, Method: http.MethodPost, Path: PathPackages,
			Sign: func(actor string, key ed25519.PrivateKey) []byte {
				return service.MustJSON(map[string]any{"id": pkg, "destination": "DC Jakarta", "items": benchItems,
					"manifest_signature": base64.StdEncoding.EncodeToString(ed25519.Sign(key, ManifestBytes(pkg, actor, "DC Jakarta", benchItems)))})
			}}},
		Start: service.MustJSON(map[string]string{"package_id": pkg}),
		Steps: []service.BenchOp{
			{Name: "scan", Method: http.MethodPost, Path: path + "/scan"},
			{Name: "validate", Method: http.MethodPost, Path: path + "/validate", Body: service.MustJSON(map[string]any{"observed_items": benchObserved})},
			{Name: "qc", Method: http.MethodPost, Path: path + "/qc", Body: []byte(`{"passed":true,"notes":"ok","checks":{"seal":"intact"}}`)},
			{Name: "label", Method: http.MethodPost, Path: path + "/label", Body: []byte(`{"courier_id":"courier-1"}`)},
		},
	}
}
