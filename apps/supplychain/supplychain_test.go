package supplychain_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/duet-bft/duet/apps/supplychain"
	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service"
	"github.com/duet-bft/duet/service/servicetest"
)

type actor struct {
	id, role string
	key      ed25519.PrivateKey
}

// newActor derives the actor's key from its id and a salt, so every run
// (and every world) uses the same keys.
func newActor(id, role, salt string) actor {
	seed := sha256.Sum256([]byte("duet-test/" + salt + "/" + id))
	return actor{id: id, role: role, key: ed25519.NewKeyFromSeed(seed[:])}
}

func (a actor) record() service.Actor {
	return service.Actor{ID: a.id, Role: a.role, Org: "org-" + a.id, PublicKey: a.key.Public().(ed25519.PublicKey)}
}

// world is an L1 state with the test actors and courier CR-1, and the
// registry that applies ops to it.
type world struct {
	t      *testing.T
	reg    *service.Registry
	st     servicetest.Store
	height uint64
	now    int64
	actors map[string]actor
}

const t0 = int64(1_700_000_000_000)

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t, reg: supplychain.New(), st: servicetest.Store{}, now: t0, actors: map[string]actor{}}
	w.height = 1
	for _, a := range []actor{
		newActor("ADM-1", service.RoleAdmin, ""),
		newActor("SUP-1", supplychain.RoleSupplier, ""),
		newActor("SUP-2", supplychain.RoleSupplier, ""),
		newActor("OP-1", supplychain.RoleOperator, ""),
		newActor("CR-1", supplychain.RoleCourier, ""),
		newActor("AUD-1", supplychain.RoleAuditor, ""),
	} {
		w.actors[a.id] = a
		w.st[service.ActorKey(a.id)] = servicetest.Entry{Value: service.MustJSON(a.record()), Version: w.height}
	}
	tx := service.NewTx(w.st)
	if err := w.reg.InitGenesis(tx, json.RawMessage(`{"app":{"couriers":[{"id":"CR-1","name":"Kurir Cepat","actor_id":"CR-1"}]}}`)); err != nil {
		t.Fatalf("InitGenesis: %v", err)
	}
	w.commit(tx)
	return w
}

// commit applies a session's writes to the store at the next height.
func (w *world) commit(tx *service.Tx) {
	w.height++
	w.st.Apply(tx.Writes(), w.height)
}

func (w *world) query(path string) service.Response {
	w.t.Helper()
	resp, err := w.reg.Query(w.st, path)
	if err != nil {
		w.t.Fatalf("query %s: %v", path, err)
	}
	return resp
}

// session signs and applies the ops of one session to its own Tx.
type session struct {
	w    *world
	tx   *service.Tx
	id   string
	a    actor
	seq  uint64
	prev protocol.Hash
	time int64 // time of the last op
}

// expires is the expiry every test op signs; Apply does not check it (L2
// and L1 do, against their clocks).
const expires = 4_000_000_000_000

// open starts a session with a signed seq-0 op, as the framework does.
func (w *world) open(id, actorID string) *session {
	w.t.Helper()
	s := w.on(service.NewTx(w.st), id, actorID)
	if resp := s.do(http.MethodPost, service.PathSessions, `{}`); resp.Status != http.StatusCreated {
		w.t.Fatalf("start session %s: got %d %s, want 201", id, resp.Status, resp.Body)
	}
	return s
}

// on returns a session of actorID that applies its ops to tx.
func (w *world) on(tx *service.Tx, id, actorID string) *session {
	a, ok := w.actors[actorID]
	if !ok {
		w.t.Fatalf("no test actor %s", actorID)
	}
	return &session{w: w, tx: tx, id: id, a: a}
}

func (s *session) do(method, path, body string) service.Response {
	signed := protocol.OpBytes(s.id, s.seq, s.prev, method, path, []byte(body), expires)
	return s.apply(method, path, body, signed, ed25519.Sign(s.a.key, signed))
}

func (s *session) apply(method, path, body string, signed, sig []byte) service.Response {
	s.w.now += 1000
	s.time = s.w.now
	op := &service.Op{Session: s.id, Seq: s.seq, Actor: s.a.id, Method: method, Path: path,
		Body: []byte(body), Prev: s.prev, Signature: sig, Time: s.time, Expires: expires}
	resp, err := s.w.reg.Apply(s.tx, op)
	if err != nil {
		s.w.t.Fatalf("apply %s %s: %v", method, path, err)
	}
	s.seq++
	s.prev = protocol.OpHash(signed)
	return resp
}

func (s *session) post(path, body string) service.Response { return s.do(http.MethodPost, path, body) }

func (s *session) step(pkg, step, body string) service.Response {
	return s.post(supplychain.PathPackages+"/"+pkg+"/"+step, body)
}

func (s *session) commit() {
	s.w.t.Helper()
	if resp := s.post(service.CommitPath(s.id), `{}`); resp.Status != http.StatusAccepted {
		s.w.t.Fatalf("commit %s: got %d %s, want 202", s.id, resp.Status, resp.Body)
	}
	s.w.commit(s.tx)
}

func wantResp(t *testing.T, what string, resp service.Response, status int, code, msgPart string) {
	t.Helper()
	if resp.Status != status {
		t.Fatalf("%s: got status %d (%s), want %d", what, resp.Status, resp.Body, status)
	}
	if code == "" && msgPart == "" {
		return
	}
	var e service.ErrorBody
	if err := json.Unmarshal(resp.Body, &e); err != nil {
		t.Fatalf("%s: error body %s: %v", what, resp.Body, err)
	}
	if e.Error.Code != code {
		t.Fatalf("%s: got code %q (%s), want %q", what, e.Error.Code, e.Error.Message, code)
	}
	if !strings.Contains(e.Error.Message, msgPart) {
		t.Fatalf("%s: got message %q, want it to contain %q", what, e.Error.Message, msgPart)
	}
}

func wantBody(t *testing.T, what string, resp service.Response, status int, body string) {
	t.Helper()
	if resp.Status != status || string(resp.Body) != body {
		t.Fatalf("%s: got %d %s\nwant %d %s", what, resp.Status, resp.Body, status, body)
	}
}

// Fixtures.

var defaultItems = []supplychain.Item{
	{SKU: "SKU-2", Name: "Gadget", Qty: 1},
	{SKU: "SKU-1", Name: "Widget", Qty: 3},
}

const (
	defaultDest = "DC Jakarta"
	scanBody    = `{}`
	validateOK  = `{"observed_items":[{"sku":"SKU-2","qty":1},{"sku":"SKU-1","qty":3}]}`
	validateBad = `{"observed_items":[{"sku":"SKU-2","qty":2},{"sku":"SKU-3","qty":1}]}`
	qcPass      = `{"passed":true,"notes":"seal intact","checks":{"weight_g":1200,"seal":"intact","photos":{"b":2,"a":1}}}`
	qcFail      = `{"passed":false,"notes":"crushed corner","checks":{"box":"damaged"}}`
	labelCR1    = `{"courier_id":"CR-1"}`
)

func signManifest(a actor, pkgID, supplier, dest string, items []supplychain.Item) string {
	return base64.StdEncoding.EncodeToString(ed25519.Sign(a.key, supplychain.ManifestBytes(pkgID, supplier, dest, items)))
}

func createBody(id, dest string, items []supplychain.Item, sig string) string {
	return string(service.MustJSON(map[string]any{"id": id, "destination": dest, "items": items, "manifest_signature": sig}))
}

// validCreate is a create body for pkgID signed by supplier SUP-1.
func (w *world) validCreate(pkgID string) string {
	return createBody(pkgID, defaultDest, defaultItems, signManifest(w.actors["SUP-1"], pkgID, "SUP-1", defaultDest, defaultItems))
}

// createPackage creates and commits pkgID by SUP-1.
func (w *world) createPackage(pkgID string) {
	w.t.Helper()
	s := w.open("S-create-"+pkgID, "SUP-1")
	wantResp(w.t, "create "+pkgID, s.post(supplychain.PathPackages, w.validCreate(pkgID)), http.StatusCreated, "", "")
	s.commit()
}

type stepOp struct{ step, body string }

// stepsTo lists the operator steps that take a created package to stage.
var stepsTo = map[string][]stepOp{
	supplychain.StageCreated:          nil,
	supplychain.StageScanned:          {{"scan", scanBody}},
	supplychain.StageValidated:        {{"scan", scanBody}, {"validate", validateOK}},
	supplychain.StageValidationFailed: {{"scan", scanBody}, {"validate", validateBad}},
	supplychain.StageQCPassed:         {{"scan", scanBody}, {"validate", validateOK}, {"qc", qcPass}},
	supplychain.StageQCFailed:         {{"scan", scanBody}, {"validate", validateOK}, {"qc", qcFail}},
	supplychain.StageLabeled:          {{"scan", scanBody}, {"validate", validateOK}, {"qc", qcPass}, {"label", labelCR1}},
}

// operatorAt creates pkgID and returns an open OP-1 session in which it has
// reached stage.
func (w *world) operatorAt(pkgID, stage string) *session {
	w.t.Helper()
	w.createPackage(pkgID)
	s := w.open("S-op-"+pkgID, "OP-1")
	for _, op := range stepsTo[stage] {
		wantResp(w.t, op.step, s.step(pkgID, op.step, op.body), http.StatusOK, "", "")
	}
	return s
}

func (w *world) pkg(tx *service.Tx, id string) supplychain.Package {
	w.t.Helper()
	raw, ok := tx.Get(supplychain.PackageKey(id))
	if !ok {
		w.t.Fatalf("package %s not in state", id)
	}
	var p supplychain.Package
	if err := json.Unmarshal(raw, &p); err != nil {
		w.t.Fatalf("package %s: %v", id, err)
	}
	return p
}

// Tests.

func TestManifestBytes(t *testing.T) {
	items := []supplychain.Item{{SKU: "b", Name: "Bee", Qty: 20}, {SKU: "a", Name: "Ant", Qty: 1}}
	got := string(supplychain.ManifestBytes("PKG-1", "SUP-1", "DC Jakarta", items))
	want := "duet/manifest/v1\nPKG-1\nSUP-1\nDC Jakarta\na\tAnt\t1\nb\tBee\t20\n"
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if items[0].SKU != "b" {
		t.Fatalf("got items[0].sku %q after ManifestBytes, want %q (input must not be reordered)", items[0].SKU, "b")
	}
}

func TestHappyPath(t *testing.T) {
	w := newWorld(t)
	sup := w.open("S-sup", "SUP-1")
	sig := signManifest(w.actors["SUP-1"], "PKG-1", "SUP-1", defaultDest, defaultItems)
	resp := sup.post(supplychain.PathPackages, createBody("PKG-1", defaultDest, defaultItems, sig))
	createdAt := sup.time
	wantBody(t, "create", resp, http.StatusCreated, fmt.Sprintf(`{"package":{"id":"PKG-1","supplier":"SUP-1","destination":"DC Jakarta",`+
		`"items":[{"sku":"SKU-1","name":"Widget","qty":3},{"sku":"SKU-2","name":"Gadget","qty":1}],`+
		`"manifest_signature":"%s","created_at":%d,"stage":"created","history_len":1,"history_chunks":1}}`, sig, createdAt))
	sup.commit()

	op := w.open("S-op-1", "OP-1")
	wantBody(t, "scan", op.step("PKG-1", "scan", scanBody), http.StatusOK,
		`{"package_id":"PKG-1","expected_items":[{"sku":"SKU-1","name":"Widget","qty":3},{"sku":"SKU-2","name":"Gadget","qty":1}]}`)
	wantBody(t, "validate", op.step("PKG-1", "validate", validateOK), http.StatusOK,
		`{"signature_valid":true,"contents_match":true,"discrepancies":[]}`)
	wantBody(t, "qc", op.step("PKG-1", "qc", qcPass), http.StatusOK,
		`{"passed":true,"notes":"seal intact","checks":{"photos":{"a":1,"b":2},"seal":"intact","weight_g":1200}}`)

	labelSeq := op.seq
	h := sha256.Sum256([]byte(fmt.Sprintf("duet/tracking/v2\nOP-1\nS-op-1\n%d", labelSeq)))
	tracking := "TRK-" + strings.ToUpper(hex.EncodeToString(h[:6]))
	wantBody(t, "label", op.step("PKG-1", "label", labelCR1), http.StatusOK,
		fmt.Sprintf(`{"tracking_number":"%s","courier_id":"CR-1","destination":"DC Jakarta"}`, tracking))
	if got := supplychain.TrackingNumber("OP-1", "S-op-1", labelSeq); got != tracking {
		t.Fatalf("got TrackingNumber %s, want %s", got, tracking)
	}
	if got, want := len(tracking), len("TRK-")+12; got != want {
		t.Fatalf("got tracking number length %d, want %d", got, want)
	}

	if got, want := op.tx.WriteKeys(), []string{supplychain.PackageKey("PKG-1"), supplychain.HistoryKey("PKG-1", 1)}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got operator session writes %v, want %v", got, want)
	}
	op.commit()

	resp = w.query("/v1/packages/PKG-1")
	if resp.Status != http.StatusOK {
		t.Fatalf("get package: got %d %s, want 200", resp.Status, resp.Body)
	}
	var got struct{ Package supplychain.Package }
	if err := json.Unmarshal(resp.Body, &got); err != nil {
		t.Fatal(err)
	}
	p := got.Package
	if p.Stage != supplychain.StageLabeled {
		t.Fatalf("got stage %q, want %q", p.Stage, supplychain.StageLabeled)
	}
	if p.Label == nil || p.Label.TrackingNumber != tracking {
		t.Fatalf("got label %+v, want tracking number %s", p.Label, tracking)
	}
	if p.Validation == nil || !p.Validation.SignatureValid || !p.Validation.ContentsMatch {
		t.Fatalf("got validation %+v, want valid and matching", p.Validation)
	}
	if p.QC == nil || !p.QC.Passed || string(p.QC.Checks) != `{"photos":{"a":1,"b":2},"seal":"intact","weight_g":1200}` {
		t.Fatalf("got qc %+v, want passed with canonical checks", p.QC)
	}
	wantHistory := []supplychain.Event{
		{Step: "create", Actor: "SUP-1", Session: "S-sup", Seq: 1, Time: createdAt},
		{Step: "scan", Actor: "OP-1", Session: "S-op-1", Seq: 1, Time: createdAt + 3000},
		{Step: "validate", Actor: "OP-1", Session: "S-op-1", Seq: 2, Time: createdAt + 4000},
		{Step: "qc", Actor: "OP-1", Session: "S-op-1", Seq: 3, Time: createdAt + 5000},
		{Step: "label", Actor: "OP-1", Session: "S-op-1", Seq: 4, Time: createdAt + 6000},
	}
	if p.HistoryLen != len(wantHistory) {
		t.Fatalf("got history_len %d, want %d", p.HistoryLen, len(wantHistory))
	}
	wantBody(t, "history", w.query("/v1/packages/PKG-1/history"), http.StatusOK,
		`{"package_id":"PKG-1","total":5,"from":0,"history":`+string(service.MustJSON(wantHistory))+`}`)
	wantBody(t, "get courier", w.query("/v1/couriers/CR-1"), http.StatusOK,
		`{"courier":{"id":"CR-1","name":"Kurir Cepat","actor_id":"CR-1"}}`)
}

func TestRoles(t *testing.T) {
	w := newWorld(t)
	w.createPackage("PKG-1")
	routes := []struct {
		path, body string
		role       string
	}{
		{supplychain.PathPackages, w.validCreate("PKG-2"), supplychain.RoleSupplier},
		{"/v1/packages/PKG-1/scan", scanBody, supplychain.RoleOperator},
		{"/v1/packages/PKG-1/validate", validateOK, supplychain.RoleOperator},
		{"/v1/packages/PKG-1/qc", qcPass, supplychain.RoleOperator},
		{"/v1/packages/PKG-1/label", labelCR1, supplychain.RoleOperator},
		{supplychain.PathCouriers, `{"id":"CR-2","name":"Two"}`, service.RoleAdmin},
	}
	callers := []string{"ADM-1", "SUP-1", "OP-1", "CR-1", "AUD-1"}
	for _, rt := range routes {
		for _, who := range callers {
			if w.actors[who].role == rt.role {
				continue
			}
			t.Run(who+" "+rt.path, func(t *testing.T) {
				s := w.open("S-"+who, who)
				before := s.tx.Writes()
				resp := s.post(rt.path, rt.body)
				wantResp(t, "POST "+rt.path, resp, http.StatusForbidden, "PERMISSION_DENIED", rt.role)
				if got := s.tx.Writes(); !reflect.DeepEqual(got, before) {
					t.Fatalf("got writes %v after a denied op, want %v", got, before)
				}
			})
		}
	}
}

func TestStageOrder(t *testing.T) {
	stages := []string{
		supplychain.StageCreated, supplychain.StageScanned, supplychain.StageValidated,
		supplychain.StageValidationFailed, supplychain.StageQCPassed, supplychain.StageQCFailed,
		supplychain.StageLabeled,
	}
	steps := []struct {
		step, body, next string
		from             []string
	}{
		{"scan", scanBody, supplychain.StageScanned, []string{supplychain.StageCreated, supplychain.StageScanned}},
		{"validate", validateOK, supplychain.StageValidated, []string{supplychain.StageScanned}},
		{"qc", qcPass, supplychain.StageQCPassed, []string{supplychain.StageValidated}},
		{"label", labelCR1, supplychain.StageLabeled, []string{supplychain.StageQCPassed}},
	}
	for _, stage := range stages {
		for _, st := range steps {
			allowed := false
			for _, f := range st.from {
				allowed = allowed || f == stage
			}
			t.Run(st.step+" at "+stage, func(t *testing.T) {
				w := newWorld(t)
				s := w.operatorAt("PKG-1", stage)
				before := s.tx.Writes()
				resp := s.step("PKG-1", st.step, st.body)
				if allowed {
					wantResp(t, st.step, resp, http.StatusOK, "", "")
					if got := w.pkg(s.tx, "PKG-1").Stage; got != st.next {
						t.Fatalf("got stage %q, want %q", got, st.next)
					}
					return
				}
				wantResp(t, st.step, resp, http.StatusConflict, "FAILED_PRECONDITION",
					fmt.Sprintf("package PKG-1 is at stage %q; %s requires stage %q", stage, st.step, st.from[0]))
				if got := s.tx.Writes(); !reflect.DeepEqual(got, before) {
					t.Fatalf("got writes %v after a rejected step, want %v", got, before)
				}
			})
		}
	}
}

func TestUnknownPackage(t *testing.T) {
	w := newWorld(t)
	s := w.open("S-op", "OP-1")
	for _, tc := range []struct{ step, body string }{
		{"scan", scanBody}, {"validate", validateOK}, {"qc", qcPass}, {"label", labelCR1},
	} {
		wantResp(t, tc.step, s.step("PKG-404", tc.step, tc.body), http.StatusNotFound, "NOT_FOUND", "package PKG-404 not found")
	}
	for _, path := range []string{"/v1/packages/PKG-404", "/v1/packages/PKG-404/history", "/v1/couriers/CR-404"} {
		wantResp(t, "GET "+path, w.query(path), http.StatusNotFound, "NOT_FOUND", "404 not found")
	}
	if got := s.tx.Writes(); len(got) != 0 {
		t.Fatalf("got writes %v, want none", got)
	}
}

func TestUnknownCourier(t *testing.T) {
	w := newWorld(t)
	s := w.operatorAt("PKG-1", supplychain.StageQCPassed)
	before := s.tx.Writes()
	wantResp(t, "label CR-9", s.step("PKG-1", "label", `{"courier_id":"CR-9"}`), http.StatusNotFound, "NOT_FOUND", "courier CR-9 not found")
	if got := s.tx.Writes(); !reflect.DeepEqual(got, before) {
		t.Fatalf("got writes %v after a rejected label, want %v", got, before)
	}
	wantResp(t, "label CR-1", s.step("PKG-1", "label", labelCR1), http.StatusOK, "", "")
}

func TestCreatePackageErrors(t *testing.T) {
	items := func(n int) []supplychain.Item {
		out := make([]supplychain.Item, n)
		for i := range out {
			out[i] = supplychain.Item{SKU: fmt.Sprintf("SKU-%03d", i), Name: "Thing", Qty: 1}
		}
		return out
	}
	one := func(it supplychain.Item) []supplychain.Item { return []supplychain.Item{it} }
	// signed: a body for id/dest/items signed correctly by SUP-1, so that
	// only the rule under test can fail.
	signed := func(w *world, id, dest string, its []supplychain.Item) string {
		return createBody(id, dest, its, signManifest(w.actors["SUP-1"], id, "SUP-1", dest, its))
	}
	cases := []struct {
		name   string
		body   func(w *world) string
		status int
		code   string
		msg    string
	}{
		{"signed by another key", func(w *world) string {
			return createBody("PKG-1", defaultDest, defaultItems, signManifest(w.actors["SUP-2"], "PKG-1", "SUP-1", defaultDest, defaultItems))
		}, 400, "INVALID_ARGUMENT", "manifest signature does not verify"},
		{"signed for another supplier", func(w *world) string {
			return createBody("PKG-1", defaultDest, defaultItems, signManifest(w.actors["SUP-1"], "PKG-1", "SUP-2", defaultDest, defaultItems))
		}, 400, "INVALID_ARGUMENT", "manifest signature does not verify"},
		{"signed for another destination", func(w *world) string {
			return createBody("PKG-1", defaultDest, defaultItems, signManifest(w.actors["SUP-1"], "PKG-1", "SUP-1", "DC Bandung", defaultItems))
		}, 400, "INVALID_ARGUMENT", "manifest signature does not verify"},
		{"signed for other quantities", func(w *world) string {
			return createBody("PKG-1", defaultDest, defaultItems, signManifest(w.actors["SUP-1"], "PKG-1", "SUP-1", defaultDest, one(supplychain.Item{SKU: "SKU-1", Name: "Widget", Qty: 3})))
		}, 400, "INVALID_ARGUMENT", "manifest signature does not verify"},
		{"signature not base64", func(w *world) string {
			return createBody("PKG-1", defaultDest, defaultItems, "not base64!")
		}, 400, "INVALID_ARGUMENT", "manifest_signature"},
		{"signature 63 bytes", func(w *world) string {
			return createBody("PKG-1", defaultDest, defaultItems, base64.StdEncoding.EncodeToString(make([]byte, 63)))
		}, 400, "INVALID_ARGUMENT", "manifest_signature"},
		{"signature missing", func(w *world) string {
			return createBody("PKG-1", defaultDest, defaultItems, "")
		}, 400, "INVALID_ARGUMENT", "manifest_signature"},
		{"bad id", func(w *world) string { return signed(w, "PKG 1", defaultDest, defaultItems) }, 400, "INVALID_ARGUMENT", "package id"},
		{"empty destination", func(w *world) string { return signed(w, "PKG-1", "", defaultItems) }, 400, "INVALID_ARGUMENT", "destination"},
		{"destination with newline", func(w *world) string { return signed(w, "PKG-1", "DC\nJakarta", defaultItems) }, 400, "INVALID_ARGUMENT", "destination"},
		{"destination with tab", func(w *world) string { return signed(w, "PKG-1", "DC\tJakarta", defaultItems) }, 400, "INVALID_ARGUMENT", "destination"},
		{"destination too long", func(w *world) string { return signed(w, "PKG-1", strings.Repeat("d", 257), defaultItems) }, 400, "INVALID_ARGUMENT", "destination"},
		{"no items", func(w *world) string { return signed(w, "PKG-1", defaultDest, nil) }, 400, "INVALID_ARGUMENT", "items"},
		{"too many items", func(w *world) string { return signed(w, "PKG-1", defaultDest, items(257)) }, 400, "INVALID_ARGUMENT", "items"},
		{"duplicate sku", func(w *world) string {
			return signed(w, "PKG-1", defaultDest, []supplychain.Item{{SKU: "A", Name: "x", Qty: 1}, {SKU: "A", Name: "y", Qty: 2}})
		}, 400, "INVALID_ARGUMENT", "listed twice"},
		{"bad sku", func(w *world) string {
			return signed(w, "PKG-1", defaultDest, one(supplychain.Item{SKU: "SKU 1", Name: "x", Qty: 1}))
		}, 400, "INVALID_ARGUMENT", "items[0].sku"},
		{"empty name", func(w *world) string {
			return signed(w, "PKG-1", defaultDest, one(supplychain.Item{SKU: "A", Name: "", Qty: 1}))
		}, 400, "INVALID_ARGUMENT", "items[0].name"},
		{"name with tab", func(w *world) string {
			return signed(w, "PKG-1", defaultDest, one(supplychain.Item{SKU: "A", Name: "a\tb", Qty: 1}))
		}, 400, "INVALID_ARGUMENT", "items[0].name"},
		{"name too long", func(w *world) string {
			return signed(w, "PKG-1", defaultDest, one(supplychain.Item{SKU: "A", Name: strings.Repeat("n", 129), Qty: 1}))
		}, 400, "INVALID_ARGUMENT", "items[0].name"},
		{"qty 0", func(w *world) string {
			return signed(w, "PKG-1", defaultDest, one(supplychain.Item{SKU: "A", Name: "x", Qty: 0}))
		}, 400, "INVALID_ARGUMENT", "items[0].qty"},
		{"qty negative", func(w *world) string {
			return signed(w, "PKG-1", defaultDest, one(supplychain.Item{SKU: "A", Name: "x", Qty: -1}))
		}, 400, "INVALID_ARGUMENT", "items[0].qty"},
		{"qty above 1e9", func(w *world) string {
			return signed(w, "PKG-1", defaultDest, one(supplychain.Item{SKU: "A", Name: "x", Qty: 1_000_000_001}))
		}, 400, "INVALID_ARGUMENT", "items[0].qty"},
		{"not JSON", func(w *world) string { return `not json` }, 400, "MALFORMED", "invalid JSON"},
		{"empty body", func(w *world) string { return `` }, 400, "MALFORMED", "invalid JSON"},
		{"trailing data", func(w *world) string { return w.validCreate("PKG-1") + `{}` }, 400, "MALFORMED", "trailing data"},
		{"unknown field", func(w *world) string { return `{"id":"PKG-1","colour":"red"}` }, 400, "MALFORMED", "unknown field"},
		{"fractional qty", func(w *world) string {
			return `{"id":"PKG-1","destination":"D","items":[{"sku":"A","name":"x","qty":1.5}],"manifest_signature":""}`
		}, 400, "MALFORMED", "invalid JSON"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			s := w.open("S-sup", "SUP-1")
			wantResp(t, "create", s.post(supplychain.PathPackages, tc.body(w)), tc.status, tc.code, tc.msg)
			if got := s.tx.Writes(); len(got) != 0 {
				t.Fatalf("got writes %v, want none", got)
			}
		})
	}
}

func TestDuplicatePackage(t *testing.T) {
	w := newWorld(t)
	w.createPackage("PKG-1")
	// Committed by another session, and within one session.
	s := w.open("S-sup-2", "SUP-1")
	wantResp(t, "create committed PKG-1 again", s.post(supplychain.PathPackages, w.validCreate("PKG-1")), http.StatusConflict, "CONFLICT", "package PKG-1 already exists")
	wantResp(t, "create PKG-2", s.post(supplychain.PathPackages, w.validCreate("PKG-2")), http.StatusCreated, "", "")
	wantResp(t, "create PKG-2 again", s.post(supplychain.PathPackages, w.validCreate("PKG-2")), http.StatusConflict, "CONFLICT", "package PKG-2 already exists")
	// Another supplier may not take the id either.
	s2 := w.open("S-sup-3", "SUP-2")
	body := createBody("PKG-1", defaultDest, defaultItems, signManifest(w.actors["SUP-2"], "PKG-1", "SUP-2", defaultDest, defaultItems))
	wantResp(t, "SUP-2 creates PKG-1", s2.post(supplychain.PathPackages, body), http.StatusConflict, "CONFLICT", "already exists")
}

func TestStepArguments(t *testing.T) {
	cases := []struct {
		stage, step, body string
		status            int
		code, msg         string
	}{
		{supplychain.StageCreated, "scan", ``, 200, "", ""},
		{supplychain.StageCreated, "scan", `  `, 200, "", ""},
		{supplychain.StageCreated, "scan", `{"x":1}`, 400, "MALFORMED", "unknown field"},
		{supplychain.StageCreated, "scan", `{`, 400, "MALFORMED", "invalid JSON"},
		{supplychain.StageScanned, "validate", `{`, 400, "MALFORMED", "invalid JSON"},
		{supplychain.StageScanned, "validate", ``, 400, "MALFORMED", "invalid JSON"},
		{supplychain.StageScanned, "validate", `{}`, 400, "INVALID_ARGUMENT", "observed_items is required"},
		{supplychain.StageScanned, "validate", `{"observed_items":[{"sku":"A","qty":1},{"sku":"A","qty":2}]}`, 400, "INVALID_ARGUMENT", "listed twice"},
		{supplychain.StageScanned, "validate", `{"observed_items":[{"sku":"A","qty":-1}]}`, 400, "INVALID_ARGUMENT", "observed_items[0].qty"},
		{supplychain.StageScanned, "validate", `{"observed_items":[{"sku":"A B","qty":1}]}`, 400, "INVALID_ARGUMENT", "observed_items[0].sku"},
		{supplychain.StageScanned, "validate", `{"observed_items":[{"sku":"A","qty":1,"name":"x"}]}`, 400, "MALFORMED", "unknown field"},
		{supplychain.StageScanned, "validate", `{"observed_items":[]}`, 200, "", ""},
		{supplychain.StageValidated, "qc", `{"passed":"yes"}`, 400, "MALFORMED", "invalid JSON"},
		{supplychain.StageValidated, "qc", `{"notes":"x"}`, 400, "INVALID_ARGUMENT", "passed is required"},
		{supplychain.StageValidated, "qc", `{"passed":true,"checks":[1]}`, 400, "INVALID_ARGUMENT", "checks must be a JSON object"},
		{supplychain.StageValidated, "qc", `{"passed":true,"checks":"x"}`, 400, "INVALID_ARGUMENT", "checks must be a JSON object"},
		{supplychain.StageValidated, "qc", `{"passed":true,"notes":"` + strings.Repeat("n", 4097) + `"}`, 400, "INVALID_ARGUMENT", "notes"},
		{supplychain.StageValidated, "qc", `{"passed":true}`, 200, "", ""},
		{supplychain.StageQCPassed, "label", `{}`, 400, "INVALID_ARGUMENT", "courier_id"},
		{supplychain.StageQCPassed, "label", `{"courier_id":"CR 1"}`, 400, "INVALID_ARGUMENT", "courier_id"},
		{supplychain.StageQCPassed, "label", `{"courier_id":1}`, 400, "MALFORMED", "invalid JSON"},
	}
	for _, tc := range cases {
		t.Run(tc.step+" "+tc.body, func(t *testing.T) {
			w := newWorld(t)
			s := w.operatorAt("PKG-1", tc.stage)
			before := s.tx.Writes()
			resp := s.step("PKG-1", tc.step, tc.body)
			wantResp(t, tc.step, resp, tc.status, tc.code, tc.msg)
			if !resp.OK() && !reflect.DeepEqual(s.tx.Writes(), before) {
				t.Fatalf("got writes %v after a rejected step, want %v", s.tx.Writes(), before)
			}
		})
	}
	// A QC without checks records the empty object.
	w := newWorld(t)
	s := w.operatorAt("PKG-1", supplychain.StageValidated)
	wantBody(t, "qc without checks", s.step("PKG-1", "qc", `{"passed":true,"checks":null}`), http.StatusOK, `{"passed":true,"notes":"","checks":{}}`)
}

func TestValidationMismatch(t *testing.T) {
	w := newWorld(t)
	s := w.operatorAt("PKG-1", supplychain.StageScanned)
	wantBody(t, "validate", s.step("PKG-1", "validate", validateBad), http.StatusOK,
		`{"signature_valid":true,"contents_match":false,"discrepancies":[`+
			`{"sku":"SKU-1","expected":3,"observed":0},`+
			`{"sku":"SKU-2","expected":1,"observed":2},`+
			`{"sku":"SKU-3","expected":0,"observed":1}]}`)
	if got := w.pkg(s.tx, "PKG-1").Stage; got != supplychain.StageValidationFailed {
		t.Fatalf("got stage %q, want %q", got, supplychain.StageValidationFailed)
	}
	wantResp(t, "qc", s.step("PKG-1", "qc", qcPass), http.StatusConflict, "FAILED_PRECONDITION", `stage "validation_failed"`)
	wantResp(t, "label", s.step("PKG-1", "label", labelCR1), http.StatusConflict, "FAILED_PRECONDITION", `stage "validation_failed"`)
	wantResp(t, "validate again", s.step("PKG-1", "validate", validateOK), http.StatusConflict, "FAILED_PRECONDITION", `stage "validation_failed"`)
	s.commit()
	p := w.pkg(service.NewTx(w.st), "PKG-1")
	if p.Validation == nil || p.Validation.ContentsMatch || len(p.Validation.Discrepancies) != 3 {
		t.Fatalf("got committed validation %+v, want the mismatch with 3 discrepancies", p.Validation)
	}
}

func TestValidationUsesCurrentSupplierKey(t *testing.T) {
	cases := []struct {
		name      string
		change    func(w *world)
		wantValid bool
		wantStage string
	}{
		{"key unchanged", func(w *world) {}, true, supplychain.StageValidated},
		{"key rotated", func(w *world) {
			rotated := newActor("SUP-1", supplychain.RoleSupplier, "rotated")
			w.height++
			w.st[service.ActorKey("SUP-1")] = servicetest.Entry{Value: service.MustJSON(rotated.record()), Version: w.height}
		}, false, supplychain.StageValidationFailed},
		{"supplier removed", func(w *world) { delete(w.st, service.ActorKey("SUP-1")) }, false, supplychain.StageValidationFailed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			w.createPackage("PKG-1")
			tc.change(w)
			s := w.open("S-op", "OP-1")
			wantResp(t, "scan", s.step("PKG-1", "scan", scanBody), http.StatusOK, "", "")
			resp := s.step("PKG-1", "validate", validateOK)
			wantBody(t, "validate", resp, http.StatusOK,
				fmt.Sprintf(`{"signature_valid":%t,"contents_match":true,"discrepancies":[]}`, tc.wantValid))
			if got := w.pkg(s.tx, "PKG-1").Stage; got != tc.wantStage {
				t.Fatalf("got stage %q, want %q", got, tc.wantStage)
			}
		})
	}
}

func TestQCFailedBlocksLabel(t *testing.T) {
	w := newWorld(t)
	s := w.operatorAt("PKG-1", supplychain.StageValidated)
	wantBody(t, "qc", s.step("PKG-1", "qc", qcFail), http.StatusOK, `{"passed":false,"notes":"crushed corner","checks":{"box":"damaged"}}`)
	if got := w.pkg(s.tx, "PKG-1").Stage; got != supplychain.StageQCFailed {
		t.Fatalf("got stage %q, want %q", got, supplychain.StageQCFailed)
	}
	wantResp(t, "label", s.step("PKG-1", "label", labelCR1), http.StatusConflict, "FAILED_PRECONDITION",
		`package PKG-1 is at stage "qc_failed"; label requires stage "qc_passed"`)
	wantResp(t, "qc again", s.step("PKG-1", "qc", qcPass), http.StatusConflict, "FAILED_PRECONDITION", `stage "qc_failed"`)
}

// transcript runs a fixed op sequence, failures included, in a fresh world
// and returns every response and the session write sets.
func transcript(t *testing.T) (resps []service.Response, writes [][]service.KV, reads [][]protocol.Read) {
	w := newWorld(t)
	sup := w.open("S-sup", "SUP-1")
	admin := w.open("S-adm", "ADM-1")
	op := w.open("S-op", "OP-1")
	run := func(s *session, path, body string) {
		resps = append(resps, s.post(path, body))
	}
	run(sup, supplychain.PathPackages, w.validCreate("PKG-1"))
	run(sup, supplychain.PathPackages, w.validCreate("PKG-1"))
	run(sup, supplychain.PathPackages, w.validCreate("PKG-2"))
	run(sup, supplychain.PathPackages, `{"id":`)
	sup.commit()
	run(admin, supplychain.PathCouriers, `{"id":"CR-2","name":"Dua"}`)
	admin.commit()
	for _, o := range []struct{ path, body string }{
		{"/v1/packages/PKG-1/qc", qcPass},
		{"/v1/packages/PKG-1/scan", scanBody},
		{"/v1/packages/PKG-2/scan", ``},
		{"/v1/packages/PKG-1/validate", validateOK},
		{"/v1/packages/PKG-2/validate", validateBad},
		{"/v1/packages/PKG-1/qc", qcPass},
		{"/v1/packages/PKG-1/label", `{"courier_id":"CR-9"}`},
		{"/v1/packages/PKG-1/label", `{"courier_id":"CR-2"}`},
		{"/v1/packages/PKG-2/qc", qcPass},
	} {
		run(op, o.path, o.body)
		writes = append(writes, op.tx.Writes())
		reads = append(reads, op.tx.Reads())
	}
	op.commit()
	resps = append(resps, w.query("/v1/packages/PKG-1"), w.query("/v1/packages/PKG-2/history"))
	return resps, writes, reads
}

func TestDeterminism(t *testing.T) {
	resps1, writes1, reads1 := transcript(t)
	resps2, writes2, reads2 := transcript(t)
	if len(resps1) != len(resps2) {
		t.Fatalf("got %d and %d responses, want equal", len(resps1), len(resps2))
	}
	for i := range resps1 {
		if resps1[i].Status != resps2[i].Status || !bytes.Equal(resps1[i].Body, resps2[i].Body) {
			t.Fatalf("response %d: got %d %s, then %d %s; want identical", i, resps1[i].Status, resps1[i].Body, resps2[i].Status, resps2[i].Body)
		}
		if resps1[i].Hash() != resps2[i].Hash() {
			t.Fatalf("response %d: got result hashes %s and %s, want equal", i, resps1[i].Hash(), resps2[i].Hash())
		}
	}
	if !reflect.DeepEqual(writes1, writes2) {
		t.Fatalf("got write sets\n%v\nand\n%v\nwant identical", writes1, writes2)
	}
	if !reflect.DeepEqual(reads1, reads2) {
		t.Fatalf("got read sets\n%v\nand\n%v\nwant identical", reads1, reads2)
	}
}

func TestFailedOpLeavesTxUnchanged(t *testing.T) {
	w := newWorld(t)
	w.createPackage("PKG-1")
	s := w.operatorAt("PKG-2", supplychain.StageValidated)
	sup := w.on(s.tx, "S-sup-x", "SUP-1")
	adm := w.on(s.tx, "S-adm-x", "ADM-1")
	forged := func(s *session, path, body string) service.Response {
		signed := protocol.OpBytes(s.id, s.seq, s.prev, http.MethodPost, path, []byte(body), expires)
		return s.apply(http.MethodPost, path, body, signed, ed25519.Sign(w.actors["SUP-2"].key, signed))
	}
	cases := []struct {
		name   string
		do     func() service.Response
		status int
		code   string
	}{
		{"malformed", func() service.Response { return s.step("PKG-2", "qc", `{"passed":tru`) }, 400, "MALFORMED"},
		{"invalid argument", func() service.Response { return s.step("PKG-2", "qc", `{"notes":"x"}`) }, 400, "INVALID_ARGUMENT"},
		{"label before qc", func() service.Response { return s.step("PKG-2", "label", labelCR1) }, 409, "FAILED_PRECONDITION"},
		{"rescan after validation", func() service.Response { return s.step("PKG-2", "scan", scanBody) }, 409, "FAILED_PRECONDITION"},
		{"unknown package", func() service.Response { return s.step("PKG-404", "scan", scanBody) }, 404, "NOT_FOUND"},
		{"no route", func() service.Response { return s.post("/v1/nowhere", `{}`) }, 404, "NOT_FOUND"},
		{"method not allowed", func() service.Response { return s.post("/v1/couriers/CR-1", `{}`) }, 405, "METHOD_NOT_ALLOWED"},
		{"supplier scans", func() service.Response { return sup.step("PKG-1", "scan", scanBody) }, 403, "PERMISSION_DENIED"},
		{"duplicate package", func() service.Response { return sup.post(supplychain.PathPackages, w.validCreate("PKG-1")) }, 409, "CONFLICT"},
		{"bad manifest signature", func() service.Response {
			return sup.post(supplychain.PathPackages, createBody("PKG-9", defaultDest, defaultItems, signManifest(w.actors["SUP-2"], "PKG-9", "SUP-1", defaultDest, defaultItems)))
		}, 400, "INVALID_ARGUMENT"},
		{"duplicate courier", func() service.Response { return adm.post(supplychain.PathCouriers, `{"id":"CR-1","name":"x"}`) }, 409, "CONFLICT"},
		{"forged signature", func() service.Response { return forged(s, "/v1/packages/PKG-2/qc", qcPass) }, 401, "UNAUTHENTICATED"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			writes, reads := s.tx.Writes(), s.tx.Reads()
			wantResp(t, tc.name, tc.do(), tc.status, tc.code, "")
			if got := s.tx.Writes(); !reflect.DeepEqual(got, writes) {
				t.Fatalf("got writes %v, want %v", got, writes)
			}
			if got := s.tx.Reads(); !reflect.DeepEqual(got, reads) {
				t.Fatalf("got reads %v, want %v", got, reads)
			}
		})
	}
	// The session is still usable.
	wantResp(t, "qc", s.step("PKG-2", "qc", qcPass), http.StatusOK, "", "")
}

func TestForgedSignature(t *testing.T) {
	const path = "/v1/packages/PKG-1/scan"
	cases := []struct {
		name string
		sign func(w *world, s *session) (signed, sig []byte)
	}{
		{"signed by another actor's key", func(w *world, s *session) ([]byte, []byte) {
			signed := protocol.OpBytes(s.id, s.seq, s.prev, http.MethodPost, path, []byte(scanBody), expires)
			return signed, ed25519.Sign(w.actors["SUP-1"].key, signed)
		}},
		{"body changed after signing", func(w *world, s *session) ([]byte, []byte) {
			signed := protocol.OpBytes(s.id, s.seq, s.prev, http.MethodPost, path, []byte(scanBody), expires)
			orig := protocol.OpBytes(s.id, s.seq, s.prev, http.MethodPost, path, []byte(` {}`), expires)
			return signed, ed25519.Sign(s.a.key, orig)
		}},
		{"signed for another seq", func(w *world, s *session) ([]byte, []byte) {
			signed := protocol.OpBytes(s.id, s.seq, s.prev, http.MethodPost, path, []byte(scanBody), expires)
			return signed, ed25519.Sign(s.a.key, protocol.OpBytes(s.id, s.seq+1, s.prev, http.MethodPost, path, []byte(scanBody), expires))
		}},
		{"signed for another path", func(w *world, s *session) ([]byte, []byte) {
			signed := protocol.OpBytes(s.id, s.seq, s.prev, http.MethodPost, path, []byte(scanBody), expires)
			return signed, ed25519.Sign(s.a.key, protocol.OpBytes(s.id, s.seq, s.prev, http.MethodPost, "/v1/packages/PKG-2/scan", []byte(scanBody), expires))
		}},
		{"zero signature", func(w *world, s *session) ([]byte, []byte) {
			return protocol.OpBytes(s.id, s.seq, s.prev, http.MethodPost, path, []byte(scanBody), expires), make([]byte, ed25519.SignatureSize)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			w.createPackage("PKG-1")
			s := w.open("S-op", "OP-1")
			signed, sig := tc.sign(w, s)
			wantResp(t, "forged scan", s.apply(http.MethodPost, path, scanBody, signed, sig), http.StatusUnauthorized, "UNAUTHENTICATED", "bad signature")
			if got := s.tx.Writes(); len(got) != 0 {
				t.Fatalf("got writes %v, want none", got)
			}
		})
	}
	// An actor unknown to the state is not authenticated either.
	w := newWorld(t)
	w.createPackage("PKG-1")
	s := w.open("S-op", "OP-1")
	s.a.id = "OP-404"
	wantResp(t, "unknown actor", s.post(path, scanBody), http.StatusUnauthorized, "UNAUTHENTICATED", "unknown actor")
}

func TestCouriers(t *testing.T) {
	cases := []struct {
		name, body string
		status     int
		code, msg  string
	}{
		{"no actor", `{"id":"CR-2","name":"Dua"}`, 201, "", ""},
		{"with courier actor", `{"id":"CR-3","name":"Tiga","actor_id":"CR-1"}`, 201, "", ""},
		{"duplicate", `{"id":"CR-1","name":"Again"}`, 409, "CONFLICT", "courier CR-1 already exists"},
		{"actor not a courier", `{"id":"CR-4","name":"Empat","actor_id":"OP-1"}`, 400, "INVALID_ARGUMENT", `role "operator"`},
		{"unknown actor", `{"id":"CR-4","name":"Empat","actor_id":"NOBODY"}`, 404, "NOT_FOUND", "actor NOBODY not found"},
		{"bad id", `{"id":"CR 4","name":"Empat"}`, 400, "INVALID_ARGUMENT", "courier id"},
		{"empty name", `{"id":"CR-4","name":""}`, 400, "INVALID_ARGUMENT", "courier name"},
		{"name too long", `{"id":"CR-4","name":"` + strings.Repeat("n", 129) + `"}`, 400, "INVALID_ARGUMENT", "courier name"},
		{"unknown field", `{"id":"CR-4","name":"x","phone":"1"}`, 400, "MALFORMED", "unknown field"},
		{"malformed", `{"id":`, 400, "MALFORMED", "invalid JSON"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			s := w.open("S-adm", "ADM-1")
			resp := s.post(supplychain.PathCouriers, tc.body)
			wantResp(t, "create courier", resp, tc.status, tc.code, tc.msg)
			if !resp.OK() {
				if got := s.tx.Writes(); len(got) != 0 {
					t.Fatalf("got writes %v, want none", got)
				}
				return
			}
			var c struct{ Courier supplychain.Courier }
			if err := json.Unmarshal(resp.Body, &c); err != nil {
				t.Fatal(err)
			}
			s.commit()
			wantBody(t, "get courier", w.query("/v1/couriers/"+c.Courier.ID), http.StatusOK, string(resp.Body))
		})
	}

	// A courier without an actor can take labels.
	w := newWorld(t)
	adm := w.open("S-adm", "ADM-1")
	wantBody(t, "create CR-2", adm.post(supplychain.PathCouriers, `{"id":"CR-2","name":"Dua"}`), http.StatusCreated, `{"courier":{"id":"CR-2","name":"Dua"}}`)
	adm.commit()
	s := w.operatorAt("PKG-1", supplychain.StageQCPassed)
	wantResp(t, "label CR-2", s.step("PKG-1", "label", `{"courier_id":"CR-2"}`), http.StatusOK, "", "")

	// The registry lists every courier, genesis's too, sorted by id.
	adm = w.open("S-adm-2", "ADM-1")
	wantResp(t, "create CR-0", adm.post(supplychain.PathCouriers, `{"id":"CR-0","name":"Nol"}`), http.StatusCreated, "", "")
	adm.commit()
	wantBody(t, "list couriers", w.query(supplychain.PathCouriers), http.StatusOK,
		`{"couriers":[{"id":"CR-0","name":"Nol"},{"id":"CR-1","name":"Kurir Cepat","actor_id":"CR-1"},{"id":"CR-2","name":"Dua"}]}`)
}

func TestGenesis(t *testing.T) {
	courierActor := newActor("CR-A", supplychain.RoleCourier, "")
	opActor := newActor("OP-A", supplychain.RoleOperator, "")
	actors := `"actors":[` + string(service.MustJSON(courierActor.record())) + `,` + string(service.MustJSON(opActor.record())) + `]`
	cases := []struct {
		name, raw string
		wantErr   string
		couriers  bool // CR-A and CR-B are loaded
	}{
		{"couriers", `{` + actors + `,"app":{"couriers":[{"id":"CR-A","name":"A","actor_id":"CR-A"},{"id":"CR-B","name":"B"}]}}`, "", true},
		{"no app state", `{` + actors + `}`, "", false},
		{"empty couriers", `{"app":{"couriers":[]}}`, "", false},
		{"duplicate courier", `{"app":{"couriers":[{"id":"CR-B","name":"B"},{"id":"CR-B","name":"B2"}]}}`, "already exists", false},
		{"actor not a courier", `{` + actors + `,"app":{"couriers":[{"id":"CR-A","name":"A","actor_id":"OP-A"}]}}`, `role "operator"`, false},
		{"unknown actor", `{"app":{"couriers":[{"id":"CR-A","name":"A","actor_id":"CR-A"}]}}`, "actor CR-A not found", false},
		{"bad courier id", `{"app":{"couriers":[{"id":"CR A","name":"A"}]}}`, "courier id", false},
		{"unknown field", `{"app":{"couriers":[],"depots":[]}}`, "unknown field", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := servicetest.Store{}
			tx := service.NewTx(st)
			err := supplychain.New().InitGenesis(tx, json.RawMessage(tc.raw))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want nil", err)
			}
			if !tc.couriers {
				return
			}
			st.Apply(tx.Writes(), 1)
			reg := supplychain.New()
			q := func(path string) service.Response {
				resp, err := reg.Query(st, path)
				if err != nil {
					t.Fatal(err)
				}
				return resp
			}
			wantBody(t, "CR-A", q("/v1/couriers/CR-A"), http.StatusOK, `{"courier":{"id":"CR-A","name":"A","actor_id":"CR-A"}}`)
			wantBody(t, "CR-B", q("/v1/couriers/CR-B"), http.StatusOK, `{"courier":{"id":"CR-B","name":"B"}}`)
		})
	}
}

func TestQueries(t *testing.T) {
	w := newWorld(t)
	w.createPackage("PKG-1")
	for _, tc := range []struct {
		path   string
		status int
		code   string
	}{
		{"/v1/packages/PKG-1", 200, ""},
		{"/v1/packages/PKG-1/history", 200, ""},
		{"/v1/couriers/CR-1", 200, ""},
		{"/v1/packages/PKG-404", 404, "NOT_FOUND"},
		{"/v1/packages/bad%20id", 400, "INVALID_ARGUMENT"},
		{"/v1/couriers/bad%20id", 400, "INVALID_ARGUMENT"},
	} {
		wantResp(t, "GET "+tc.path, w.query(tc.path), tc.status, tc.code, "")
	}
}

// deepChecks is a QC body whose checks nest n objects deep.
func deepChecks(n int) string {
	return `{"passed":true,"checks":` + strings.Repeat(`{"a":`, n) + `1` + strings.Repeat(`}`, n) + `}`
}

// FuzzStep applies arbitrary bodies to every mutating route: a handler must
// never panic, and a rejected op must leave the session untouched. And
// whatever a handler accepts, every handler and query can read back: once
// an accepted op is committed, the package, its history and the courier
// queries answer without a server error, and so does every later step.
func FuzzStep(f *testing.F) {
	for i, body := range []string{scanBody, validateOK, validateBad, qcPass, qcFail, labelCR1, `{"id":"CR-2","name":"x"}`, `{`, ``, `null`,
		`{"checks":{"a":[1,{"b":null}]},"passed":true}`, deepChecks(31), deepChecks(9999), "{\"passed\":true,\"notes\":\"\xff\"}",
		`{"passed":true,"notes":"\ud800"}`} {
		f.Add(uint8(i), []byte(body))
		f.Add(uint8(i+16), []byte(body))
	}
	paths := []string{
		supplychain.PathPackages,
		"/v1/packages/PKG-1/scan", "/v1/packages/PKG-1/validate", "/v1/packages/PKG-1/qc", "/v1/packages/PKG-1/label",
		supplychain.PathCouriers,
	}
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		w := newWorld(t)
		path := paths[int(route)%len(paths)]
		s := w.operatorAt("PKG-1", []string{supplychain.StageCreated, supplychain.StageScanned, supplychain.StageValidated, supplychain.StageQCPassed}[int(route/8)%4])
		if path == supplychain.PathPackages {
			s = w.on(s.tx, "S-sup-f", "SUP-1")
		} else if path == supplychain.PathCouriers {
			s = w.on(s.tx, "S-adm-f", "ADM-1")
		}
		before := s.tx.Writes()
		resp := s.post(path, string(body))
		if resp.Status >= 500 {
			t.Fatalf("got %d %s, want no server error", resp.Status, resp.Body)
		}
		if !json.Valid(resp.Body) {
			t.Fatalf("got non-JSON body %q", resp.Body)
		}
		if !resp.OK() && !reflect.DeepEqual(s.tx.Writes(), before) {
			t.Fatalf("got writes changed by a rejected op (%d %s)", resp.Status, resp.Body)
		}
		if !resp.OK() {
			return
		}
		w.commit(s.tx)
		for _, q := range []string{"/v1/packages/PKG-1", "/v1/packages/PKG-1/history", "/v1/couriers/CR-1", "/v1/couriers/CR-2"} {
			if r := w.query(q); r.Status >= 500 || !json.Valid(r.Body) {
				t.Fatalf("after %s %q was accepted: GET %s = %d %s", path, body, q, r.Status, r.Body)
			}
		}
		later := w.open("S-later", "OP-1")
		for _, st := range []stepOp{{"scan", scanBody}, {"validate", validateOK}, {"qc", qcPass}, {"label", labelCR1}} {
			if r := later.step("PKG-1", st.step, st.body); r.Status >= 500 {
				t.Fatalf("after %s %q was accepted: %s = %d %s", path, body, st.step, r.Status, r.Body)
			}
		}
	})
}

// TestNestingAndEncoding reproduces a package bricked by one QC body:
// checks nested 9,999 deep were accepted, and the stored package then
// exceeded encoding/json's depth limit on every read. And invalid UTF-8
// was stored as U+FFFD, so the stored text differed from the signed body.
// Both are refused at the door now, and a body within the limits reads
// back.
func TestNestingAndEncoding(t *testing.T) {
	w := newWorld(t)
	s := w.operatorAt("PKG-1", supplychain.StageValidated)
	wantResp(t, "deep checks", s.step("PKG-1", "qc", deepChecks(9999)), http.StatusBadRequest, "MALFORMED", "deeper than")
	wantResp(t, "invalid UTF-8", s.step("PKG-1", "qc", "{\"passed\":true,\"notes\":\"\xff\"}"), http.StatusBadRequest, "MALFORMED", "UTF-8")
	wantResp(t, "lone surrogate", s.step("PKG-1", "qc", `{"passed":true,"notes":"\ud800"}`), http.StatusBadRequest, "MALFORMED", "")
	wantResp(t, "deepest allowed", s.step("PKG-1", "qc", deepChecks(service.MaxJSONDepth-1)), http.StatusOK, "", "")
	s.commit()
	for _, q := range []string{"/v1/packages/PKG-1", "/v1/packages/PKG-1/history"} {
		wantResp(t, q, w.query(q), http.StatusOK, "", "")
	}
	later := w.open("S-later", "OP-1")
	wantResp(t, "label", later.step("PKG-1", "label", labelCR1), http.StatusOK, "", "")
}

// TestStartClaims: a session start claims a package only for an operator
// and only if it exists, so no one can hold packages they may not work on,
// or ids that are not packages yet.
func TestStartClaims(t *testing.T) {
	w := newWorld(t)
	w.createPackage("PKG-1")
	tests := []struct {
		actor, body string
		status      int
		code        string
		claims      []string
	}{
		{"OP-1", `{"package_id":"PKG-1"}`, http.StatusCreated, "", []string{supplychain.PackageKey("PKG-1")}},
		{"OP-1", `{}`, http.StatusCreated, "", nil},
		{"OP-1", ``, http.StatusCreated, "", nil},
		{"AUD-1", `{"purpose":"audit"}`, http.StatusCreated, "", nil},
		{"AUD-1", `{"package_id":"PKG-1"}`, http.StatusForbidden, "PERMISSION_DENIED", nil},
		{"CR-1", `{"package_id":"PKG-1"}`, http.StatusForbidden, "PERMISSION_DENIED", nil},
		{"OP-1", `{"package_id":"PKG-404"}`, http.StatusNotFound, "NOT_FOUND", nil},
		{"OP-1", `{"package_id":"no spaces"}`, http.StatusBadRequest, "INVALID_ARGUMENT", nil},
		{"OP-1", `{"package_id":7}`, http.StatusBadRequest, "INVALID_ARGUMENT", nil},
	}
	for i, tt := range tests {
		s := w.on(service.NewTx(w.st), fmt.Sprintf("S-%d", i), tt.actor)
		wantResp(t, tt.actor+" "+tt.body, s.do(http.MethodPost, service.PathSessions, tt.body), tt.status, tt.code, "")
		if got := s.tx.Claims(); !reflect.DeepEqual(got, tt.claims) {
			t.Errorf("%s %s: claims %v, want %v", tt.actor, tt.body, got, tt.claims)
		}
	}
}

// TestHistoryAppends: each step writes the package record and its
// session's chunk of the history, so its cost does not grow with the
// history (a package with thousands of scans cost O(history) per op when
// the history was part of the record), and a session adds one key to the
// state, however many steps it took. The history query returns the latest
// entries, across chunks.
func TestHistoryAppends(t *testing.T) {
	w := newWorld(t)
	w.createPackage("PKG-1")
	var sizes []int
	s := w.open("S-scans", "OP-1")
	sessions := 1
	for i := range supplychain.MaxHistoryQuery + 5 {
		wantResp(t, "scan", s.step("PKG-1", "scan", scanBody), http.StatusOK, "", "")
		if got, want := len(s.tx.WriteKeys()), 2; got != want {
			t.Fatalf("scan %d: session writes %d keys, want %d (the package and its chunk of the history)", i, got, want)
		}
		sizes = append(sizes, len(service.MustJSON(w.pkg(s.tx, "PKG-1"))))
		if i%250 == 249 {
			s.commit()
			s = w.open(fmt.Sprintf("S-scans-%d", i), "OP-1")
			sessions++
		}
	}
	s.commit()
	if first, last := sizes[0], sizes[len(sizes)-1]; last > first+8 {
		t.Errorf("package record grew from %d to %d bytes over %d scans", first, last, len(sizes))
	}
	p := w.pkg(service.NewTx(w.st), "PKG-1")
	if p.HistoryChunks != 1+sessions {
		t.Errorf("history of %d chunks, want %d (the create and each scan session)", p.HistoryChunks, 1+sessions)
	}
	var h struct {
		Total, From int
		History     []supplychain.Event
	}
	resp := w.query("/v1/packages/PKG-1/history")
	if err := json.Unmarshal(resp.Body, &h); err != nil {
		t.Fatal(err)
	}
	total := supplychain.MaxHistoryQuery + 6 // create and the scans
	if h.Total != total || h.From != total-supplychain.MaxHistoryQuery || len(h.History) != supplychain.MaxHistoryQuery ||
		h.History[len(h.History)-1].Session != s.id || h.History[0].Session != "S-scans" || h.History[0].Seq != 6 {
		t.Errorf("history: total %d from %d, %d entries, first %+v, last %+v; want total %d from %d, %d entries, from S-scans seq 6 to %s",
			h.Total, h.From, len(h.History), h.History[0], h.History[len(h.History)-1],
			total, total-supplychain.MaxHistoryQuery, supplychain.MaxHistoryQuery, s.id)
	}
}
