package service

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/duet-bft/duet/protocol"
)

// App is an application as the framework carries it from the command line
// to every node:
//   - its name and version, recorded in genesis and in the ledger's state:
//     a node refuses to run a chain of another app (or another version of
//     it), and abci_info reports both;
//   - its Registry, the deterministic handlers L2 and L1 both run;
//   - what a local network needs to show it (duet up): demo actors and
//     their genesis;
//   - its OpenAPI fragment, which every L2 node serves merged with the
//     framework's routes;
//   - the Workload duet bench measures it with;
//   - the Commands it adds to the duet binary (duet courier add).
//
// An application package declares one App and registers it from an init
// function (RegisterApp); a binary carries the applications it imports.
type App struct {
	// Name identifies the application: 1-32 characters of a-z, 0-9 and -.
	Name string
	// Version of the application's rules. Every node of a chain runs the
	// same name and version: handlers that differ would fork L1.
	Version string
	// Summary is one line for `duet apps`.
	Summary string
	// Registry holds the framework's routes (NewRegistry) and the app's.
	Registry *Registry
	// DemoActors are the roles and organisations of a local network's demo
	// actors, besides the L2 nodes' own. duet up names them <role>-<n>.
	DemoActors []DemoActor
	// DemoGenesis returns the app's part of a local network's genesis
	// given every actor (the "app" field of the app state); nil for none.
	DemoGenesis func(actors []Actor) json.RawMessage
	// OpenAPI is the app's OpenAPI 3.1 fragment: a JSON object with
	// "paths" and "components" (and optionally "tags"), whose $refs may
	// name the framework's components (Error, the Duet-* parameters and
	// headers, the shared responses). nil: the routes are undocumented.
	OpenAPI []byte
	// Workload is what duet bench runs; nil: the app cannot be benched.
	Workload *Workload
	// Console holds the app's pages of the web console every L2 node
	// serves (package console): an ES module app.js at its root that
	// exports `pages`, and the files it loads. nil: the console shows only
	// the framework's pages.
	Console fs.FS
	// Certificates, if set, lets every L2 node serve completion
	// certificates (package proof) of the app's objects.
	Certificates *Certificates
	// Commands are the subcommands the app adds to the duet binary
	// (`duet <name> ...`), each with a distinct name; nil for none.
	Commands []Command
}

// Certificates names, for an object of the app, the committed session a
// completion certificate is about.
type Certificates struct {
	// Path is the GET pattern, with {id}: "/v1/packages/{id}/certificate".
	Path string
	// Subject returns the state key of object id and the actor and id of
	// the last committed session that wrote it, read from st (the
	// committed state); ok false if there is none.
	Subject func(st Store, id string) (key, actor, session string, ok bool)
}

// DemoActor is the role and organisation of a demo actor.
type DemoActor struct{ Role, Org string }

var appName = regexp.MustCompile(`^[a-z0-9-]{1,32}$`)

// Validate reports an App that cannot be carried.
func (a *App) Validate() error {
	switch {
	case !appName.MatchString(a.Name):
		return fmt.Errorf("service: app name %q: want 1-32 characters of a-z, 0-9 and -", a.Name)
	case a.Version == "" || len(a.Version) > 64 || strings.ContainsFunc(a.Version, func(r rune) bool { return r <= ' ' || r > '~' }):
		return fmt.Errorf("service: app %s: version %q: want 1-64 printable ASCII characters", a.Name, a.Version)
	case a.Registry == nil:
		return fmt.Errorf("service: app %s has no Registry", a.Name)
	}
	for _, d := range a.DemoActors {
		if !protocol.ValidID(d.Role) || d.Org == "" {
			return fmt.Errorf("service: app %s: demo actor %+v: want a valid role and an org", a.Name, d)
		}
	}
	for i, c := range a.Commands {
		switch {
		case !appName.MatchString(c.Name):
			return fmt.Errorf("service: app %s: command name %q: want 1-32 characters of a-z, 0-9 and -", a.Name, c.Name)
		case c.Run == nil:
			return fmt.Errorf("service: app %s: command %s has no Run", a.Name, c.Name)
		case slices.ContainsFunc(a.Commands[:i], func(o Command) bool { return o.Name == c.Name }):
			return fmt.Errorf("service: app %s: command %s defined twice", a.Name, c.Name)
		}
	}
	if a.OpenAPI != nil && !json.Valid(a.OpenAPI) {
		return fmt.Errorf("service: app %s: OpenAPI fragment is not JSON", a.Name)
	}
	return nil
}

// String is "name version".
func (a *App) String() string { return a.Name + " " + a.Version }

// Genesis is a chain's genesis app state: the app it runs, the actors, and
// the app's own state.
type Genesis struct {
	AppName    string          `json:"app_name"`
	AppVersion string          `json:"app_version"`
	Actors     []Actor         `json:"actors"`
	App        json.RawMessage `json:"app,omitempty"`
}

// Genesis returns the app state of a new chain of a with actors and the
// app's own genesis state (nil: none).
func (a *App) Genesis(actors []Actor, app json.RawMessage) json.RawMessage {
	return MustJSON(Genesis{AppName: a.Name, AppVersion: a.Version, Actors: actors, App: app})
}

// GenesisApp reads which app (name and version) a genesis app state is
// for. A genesis without that record is an error: a node cannot tell
// whether it may run it.
func GenesisApp(raw json.RawMessage) (name, version string, err error) {
	var g struct {
		AppName    string `json:"app_name"`
		AppVersion string `json:"app_version"`
	}
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &g); err != nil {
			return "", "", fmt.Errorf("genesis app_state: %w", err)
		}
	}
	if g.AppName == "" || g.AppVersion == "" {
		return "", "", fmt.Errorf("genesis app_state names no application (app_name, app_version)")
	}
	return g.AppName, g.AppVersion, nil
}

// InitGenesis checks that raw is a genesis of a (same name and version)
// and loads it (Registry.InitGenesis).
func (a *App) InitGenesis(tx *Tx, raw json.RawMessage) error {
	if err := a.Check(GenesisApp(raw)); err != nil {
		return err
	}
	return a.Registry.InitGenesis(tx, raw)
}

// Check compares an app identity (from a genesis or a node's state) with
// a, saying what differs.
func (a *App) Check(name, version string, err error) error {
	switch {
	case err != nil:
		return err
	case name != a.Name:
		return fmt.Errorf("this chain runs the application %q (version %s), not %q: start the node with --app %s", name, version, a.Name, name)
	case version != a.Version:
		return fmt.Errorf("this chain runs %s version %s, and this binary carries version %s: a node must run the version its chain runs", name, version, a.Version)
	}
	return nil
}

// Workload is what duet bench measures for an application. Iteration i is
// one session of an actor of Role, timed step by step: its start, each of
// its Steps, its commit. Prep ops make the iteration possible (e.g. create
// the record it works on); they run before the session, each by an actor of
// its own role. In direct mode every prep op and every step is a one-op
// session answered after L1 finality.
type Workload struct {
	// Role is the role of the actors who run the measured sessions.
	Role string
	// Iteration returns iteration i of a run; run is unique to the run,
	// to make ids that no earlier run used.
	Iteration func(run string, i int) Iteration
}

// Iteration is one unit of a Workload.
type Iteration struct {
	Prep  []BenchOp
	Start []byte // the session start body; nil for {}
	Steps []BenchOp
}

// BenchOp is one op of a workload.
type BenchOp struct {
	Name   string // the step's name in the results
	Role   string // prep ops: the role of the actor who signs it
	Method string
	Path   string
	Body   []byte // nil for {}
	// Sign, if set, makes the body instead of Body, for the actor who
	// signs the op (e.g. to add a document signature of its own).
	Sign func(actor string, key ed25519.PrivateKey) []byte
}

// BodyFor returns the op's body as actor (with key) sends it.
func (o *BenchOp) BodyFor(actor string, key ed25519.PrivateKey) []byte {
	if o.Sign != nil {
		return o.Sign(actor, key)
	}
	if o.Body == nil {
		return []byte(`{}`)
	}
	return o.Body
}

var (
	appsMu sync.Mutex
	apps   []*App
)

// RegisterApp makes a available by name (LookupApp, Apps). Call it from an
// init function of the app's package; it panics on an invalid app or a
// name already taken.
func RegisterApp(a *App) {
	if err := a.Validate(); err != nil {
		panic(err)
	}
	appsMu.Lock()
	defer appsMu.Unlock()
	if slices.ContainsFunc(apps, func(o *App) bool { return o.Name == a.Name }) {
		panic("service: app " + a.Name + " registered twice")
	}
	apps = append(apps, a)
	slices.SortFunc(apps, func(x, y *App) int { return strings.Compare(x.Name, y.Name) })
}

// Apps returns the registered apps by name.
func Apps() []*App {
	appsMu.Lock()
	defer appsMu.Unlock()
	return slices.Clone(apps)
}

// LookupApp returns the registered app called name.
func LookupApp(name string) (*App, bool) {
	appsMu.Lock()
	defer appsMu.Unlock()
	i := slices.IndexFunc(apps, func(a *App) bool { return a.Name == name })
	if i < 0 {
		return nil, false
	}
	return apps[i], true
}
