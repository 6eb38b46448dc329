// Package supplychain is duet's reference application: the warehouse
// workflow of one package, from the supplier's signed manifest to the
// courier's label.
//
// A supplier creates a package with a manifest it signs (ManifestBytes).
// A warehouse operator then, in one session, scans the package, validates
// it (the supplier's signature against the supplier's currently registered
// key, and the observed contents against the manifest), records a quality
// check and labels it for a registered courier. The stages are
//
//	created -> scanned -> validated | validation_failed -> qc_passed | qc_failed -> labeled
//
// and each step checks that the package is at the stage it needs. A failed
// validation or quality check is a result, not an error: it moves the
// package to a terminal stage that blocks the later steps.
//
// A package's history is kept in chunks, one state key per session that
// worked on the package (HistoryKey): a step appends to its session's
// chunk, so it costs the same however long the history is, and a session
// adds one key to the state, not one per step.
//
// Everything here is a deterministic service.Handler: state is read and
// written only through the service.Tx, the time is the op's timestamp, and
// identifiers (tracking numbers) are derived by hashing the actor, the
// session id and the op's seq. The package knows nothing of sessions, bundles or HTTP
// servers; Register adds its routes to a service.Registry.
package supplychain

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service"
)

// Roles of the supply-chain actors. Couriers are registered by an admin
// (service.RoleAdmin).
const (
	RoleSupplier = "supplier"
	RoleOperator = "operator"
	RoleCourier  = "courier"
	RoleAuditor  = "auditor"
)

// Stages of a package, in workflow order. StageValidationFailed,
// StageQCFailed and StageLabeled are terminal.
const (
	StageCreated          = "created"
	StageScanned          = "scanned"
	StageValidated        = "validated"
	StageValidationFailed = "validation_failed"
	StageQCPassed         = "qc_passed"
	StageQCFailed         = "qc_failed"
	StageLabeled          = "labeled"
)

// Steps of the workflow, as recorded in a package's history.
const (
	StepCreate   = "create"
	StepScan     = "scan"
	StepValidate = "validate"
	StepQC       = "qc"
	StepLabel    = "label"
)

// Limits on request contents. Bodies are also bounded by protocol.MaxBody.
const (
	MaxItems          = 256           // items of one package
	MaxQty            = 1_000_000_000 // units of one item
	MaxDestinationLen = 256           // bytes
	MaxItemNameLen    = 128           // bytes
	MaxCourierNameLen = 128           // bytes
	MaxNotesLen       = 4096          // bytes of QC notes
	MaxHistoryQuery   = 1000          // history entries one GET returns (the latest)
	MaxCouriers       = 1000          // couriers in the registry (GET /v1/couriers lists them all)
)

// Route paths.
const (
	PathPackages = "/v1/packages"
	PathCouriers = "/v1/couriers"
)

// PackageKey is the state key of a package record.
func PackageKey(id string) string { return "pkg/" + id }

// HistoryKey is the state key of chunk n (from 0) of a package's history:
// the events of one session, in order, as a JSON array.
func HistoryKey(id string, n int) string { return fmt.Sprintf("pkg/%s/history/%010d", id, n) }

// CourierKey is the state key of a courier record.
func CourierKey(id string) string { return "courier/" + id }

// CourierIndex is the state key of the courier registry's index: the ids
// of every courier, sorted, as a JSON array (the state is read by key, so
// a list needs one).
const CourierIndex = "courier-index"

// Item is one line of a package manifest.
type Item struct {
	SKU  string `json:"sku"`
	Name string `json:"name"`
	Qty  int64  `json:"qty"`
}

// Package is the state record of a package, stored as JSON under
// PackageKey. Items are kept sorted by SKU. Validation, QC and Label are
// set by their steps. Each successful step appends one Event to the
// package's history, stored apart in chunks under HistoryKey: HistoryLen
// counts the events and HistoryChunks the chunks.
type Package struct {
	ID                string      `json:"id"`
	Supplier          string      `json:"supplier"`
	Destination       string      `json:"destination"`
	Items             []Item      `json:"items"`
	ManifestSignature []byte      `json:"manifest_signature"` // standard base64 in JSON
	CreatedAt         int64       `json:"created_at"`         // op time, Unix milliseconds
	Stage             string      `json:"stage"`
	Validation        *Validation `json:"validation,omitempty"`
	QC                *QC         `json:"qc,omitempty"`
	Label             *Label      `json:"label,omitempty"`
	HistoryLen        int         `json:"history_len"`
	HistoryChunks     int         `json:"history_chunks"`
}

// Event is one entry of a package's append-only history: which step, by
// whom, in which op.
type Event struct {
	Step    string `json:"step"`
	Actor   string `json:"actor"`
	Session string `json:"session"`
	Seq     uint64 `json:"seq"`
	Time    int64  `json:"time"` // op time, Unix milliseconds
}

// ObservedItem is what the operator counted of one SKU.
type ObservedItem struct {
	SKU string `json:"sku"`
	Qty int64  `json:"qty"`
}

// Discrepancy is one SKU whose observed quantity differs from the manifest;
// a SKU missing on either side counts as 0 there.
type Discrepancy struct {
	SKU      string `json:"sku"`
	Expected int64  `json:"expected"`
	Observed int64  `json:"observed"`
}

// Validation is the result of the validate step, and its response body.
// Discrepancies are sorted by SKU and never null.
type Validation struct {
	SignatureValid bool          `json:"signature_valid"`
	ContentsMatch  bool          `json:"contents_match"`
	Discrepancies  []Discrepancy `json:"discrepancies"`
}

// QC is the result of the quality check, and its response body. Checks is
// a JSON object in canonical form (keys sorted at every level, compact).
type QC struct {
	Passed bool            `json:"passed"`
	Notes  string          `json:"notes"`
	Checks json.RawMessage `json:"checks"`
}

// Label is the result of the label step, and its response body.
type Label struct {
	TrackingNumber string `json:"tracking_number"`
	CourierID      string `json:"courier_id"`
	Destination    string `json:"destination"`
}

// Courier is the state record of a courier, stored as JSON under
// CourierKey. ActorID, if set, names a registered actor with RoleCourier.
type Courier struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	ActorID string `json:"actor_id,omitempty"`
}

// New returns service.NewRegistry() with Register applied.
func New() *service.Registry {
	r := service.NewRegistry()
	Register(r)
	return r
}

// Register adds the supply-chain routes and genesis loader to r.
func Register(r *service.Registry) {
	supplier := []string{RoleSupplier}
	operator := []string{RoleOperator}
	admin := []string{service.RoleAdmin}

	r.Handle(http.MethodPost, PathPackages, supplier, service.Adapt(createPackage))
	r.Handle(http.MethodPost, PathPackages+"/{id}/scan", operator, service.Adapt(scanPackage))
	r.Handle(http.MethodPost, PathPackages+"/{id}/validate", operator, service.Adapt(validatePackage))
	r.Handle(http.MethodPost, PathPackages+"/{id}/qc", operator, service.Adapt(qcPackage))
	r.Handle(http.MethodPost, PathPackages+"/{id}/label", operator, service.Adapt(labelPackage))
	r.Handle(http.MethodPost, PathCouriers, admin, service.Adapt(createCourier))

	r.Handle(http.MethodGet, PathPackages+"/{id}", nil, service.Adapt(getPackage))
	r.Handle(http.MethodGet, PathPackages+"/{id}/history", nil, service.Adapt(getHistory))
	r.Handle(http.MethodGet, PathCouriers+"/{id}", nil, service.Adapt(getCourier))
	r.Handle(http.MethodGet, PathCouriers, nil, service.Adapt(listCouriers))

	r.Genesis(loadGenesis)
	r.OnStart(startSession)
}

// startSession checks a session start. One started by an operator with
// {"package_id":"PKG-1"} claims PKG-1 from the start: a second session on
// it gets 409 before it does anything. Only an operator may claim a
// package, and only one that exists, so no one can hold packages they may
// not work on, or ids that are not packages yet.
func startSession(tx *service.Tx, ctx *service.Context, start map[string]json.RawMessage) ([]string, error) {
	raw, named := start["package_id"]
	if !named {
		return nil, nil
	}
	var id string
	if err := json.Unmarshal(raw, &id); err != nil {
		return nil, service.Invalid("package_id must be a string")
	}
	if err := service.CheckID("package_id", id); err != nil {
		return nil, err
	}
	if ctx.Actor.Role != RoleOperator {
		return nil, service.Forbidden("role %q may not start a session on a package (needs %s)", ctx.Actor.Role, RoleOperator)
	}
	if _, exists := tx.Get(PackageKey(id)); !exists {
		return nil, service.NotFound("package %s not found", id)
	}
	return []string{PackageKey(id)}, nil
}

// ManifestBytes returns the bytes a supplier signs for a package manifest:
//
//	duet/manifest/v1\n<package id>\n<supplier actor id>\n<destination>\n
//
// followed by one line <sku>\t<name>\t<qty>\n per item, items sorted by
// SKU. items itself is not reordered.
func ManifestBytes(pkgID, supplier, destination string, items []Item) []byte {
	sorted := slices.Clone(items)
	slices.SortStableFunc(sorted, func(a, b Item) int { return strings.Compare(a.SKU, b.SKU) })
	n := len("duet/manifest/v1\n") + len(pkgID) + len(supplier) + len(destination) + 3
	for _, it := range sorted {
		n += len(it.SKU) + len(it.Name) + 23
	}
	b := make([]byte, 0, n)
	b = append(b, "duet/manifest/v1\n"...)
	b = append(b, pkgID...)
	b = append(b, '\n')
	b = append(b, supplier...)
	b = append(b, '\n')
	b = append(b, destination...)
	b = append(b, '\n')
	for _, it := range sorted {
		b = append(b, it.SKU...)
		b = append(b, '\t')
		b = append(b, it.Name...)
		b = append(b, '\t')
		b = strconv.AppendInt(b, it.Qty, 10)
		b = append(b, '\n')
	}
	return b
}

// TrackingNumber derives the tracking number of the label made by op seq
// of actor's session: "TRK-" and the upper-case hex of the first 6 bytes of
// sha256("duet/tracking/v2\n<actor>\n<session>\n<seq>"). Session ids are
// the actor's own, so the actor is part of what makes it unique.
func TrackingNumber(actor, session string, seq uint64) string {
	h := sha256.Sum256(strconv.AppendUint([]byte("duet/tracking/v2\n"+actor+"\n"+session+"\n"), seq, 10))
	return "TRK-" + strings.ToUpper(hex.EncodeToString(h[:6]))
}

// checkText checks a free-text field that ends up in signed, line-based
// bytes: minLen..maxLen bytes, no tab, CR or LF.
func checkText(what, s string, minLen, maxLen int) error {
	if len(s) < minLen || len(s) > maxLen {
		return service.Invalid("%s must be %d-%d bytes, got %d", what, minLen, maxLen, len(s))
	}
	if strings.ContainsAny(s, "\t\r\n") {
		return service.Invalid("%s must not contain a tab or a line break", what)
	}
	return nil
}

// truncate bounds user input quoted in messages.
func truncate(s string) string {
	if len(s) > protocol.MaxIDLen {
		return s[:protocol.MaxIDLen] + "..."
	}
	return s
}

func loadPackage(tx *service.Tx, id string) (*Package, error) {
	if err := service.CheckID("package id", id); err != nil {
		return nil, err
	}
	return service.Load[Package](tx, PackageKey(id), "package "+id)
}

func loadCourier(tx *service.Tx, id string) (*Courier, error) {
	if err := service.CheckID("courier id", id); err != nil {
		return nil, err
	}
	return service.Load[Courier](tx, CourierKey(id), "courier "+id)
}

// requires returns the stages at which step may run.
func requires(step string) []string {
	switch step {
	case StepScan:
		return []string{StageCreated, StageScanned}
	case StepValidate:
		return []string{StageScanned}
	case StepQC:
		return []string{StageValidated}
	case StepLabel:
		return []string{StageQCPassed}
	}
	panic("supplychain: unknown step " + step)
}

// openStep loads the package named by the path and checks that step may run
// at its stage.
func openStep(tx *service.Tx, req *service.Request, step string) (*Package, error) {
	p, err := loadPackage(tx, req.Param("id"))
	if err != nil {
		return nil, err
	}
	need := requires(step)
	if !slices.Contains(need, p.Stage) {
		return nil, service.Precondition("package %s is at stage %q; %s requires stage %s",
			p.ID, p.Stage, step, quoteList(need))
	}
	return p, nil
}

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, " or ")
}

// record moves p to stage, appends the step to its history and writes it.
// The step joins the last chunk of the history if that chunk is its own
// session's, and starts a new chunk otherwise.
func record(tx *service.Tx, ctx *service.Context, p *Package, step, stage string) error {
	p.Stage = stage
	ev := Event{Step: step, Actor: ctx.Actor.ID, Session: ctx.Session, Seq: ctx.Seq, Time: ctx.Time}
	var chunk []Event
	if p.HistoryChunks > 0 {
		last, err := historyChunk(tx, p, p.HistoryChunks-1)
		if err != nil {
			return err
		}
		if last[0].Actor == ev.Actor && last[0].Session == ev.Session {
			chunk = last
		}
	}
	if chunk == nil {
		p.HistoryChunks++
	}
	tx.Put(HistoryKey(p.ID, p.HistoryChunks-1), service.MustJSON(append(chunk, ev)))
	p.HistoryLen++
	tx.PutJSON(PackageKey(p.ID), p)
	return nil
}

// historyChunk reads chunk n of p's history.
func historyChunk(tx *service.Tx, p *Package, n int) ([]Event, error) {
	raw, ok := tx.Get(HistoryKey(p.ID, n))
	var chunk []Event
	if !ok || json.Unmarshal(raw, &chunk) != nil || len(chunk) == 0 {
		return nil, fmt.Errorf("package %s: history chunk %d missing or unreadable", p.ID, n)
	}
	return chunk, nil
}

type createRequest struct {
	ID                string `json:"id"`
	Destination       string `json:"destination"`
	Items             []Item `json:"items"`
	ManifestSignature string `json:"manifest_signature"`
}

func createPackage(tx *service.Tx, ctx *service.Context, req *service.Request) (service.Response, error) {
	var body createRequest
	if err := req.Decode(&body); err != nil {
		return service.Response{}, err
	}
	if err := service.CheckID("package id", body.ID); err != nil {
		return service.Response{}, err
	}
	if err := checkText("destination", body.Destination, 1, MaxDestinationLen); err != nil {
		return service.Response{}, err
	}
	if err := checkItems(body.Items); err != nil {
		return service.Response{}, err
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(body.ManifestSignature)
	if err != nil || len(sig) != 64 || base64.StdEncoding.EncodeToString(sig) != body.ManifestSignature {
		return service.Response{}, service.Invalid("manifest_signature must be the standard base64 of a 64-byte Ed25519 signature")
	}
	if !ctx.Verify(ctx.Actor.PublicKey, ManifestBytes(body.ID, ctx.Actor.ID, body.Destination, body.Items), sig) {
		return service.Response{}, service.Invalid("manifest signature does not verify")
	}
	if _, exists := tx.Get(PackageKey(body.ID)); exists {
		return service.Response{}, service.Conflict("package %s already exists", body.ID)
	}
	items := slices.Clone(body.Items)
	slices.SortFunc(items, func(a, b Item) int { return strings.Compare(a.SKU, b.SKU) })
	p := &Package{
		ID:                body.ID,
		Supplier:          ctx.Actor.ID,
		Destination:       body.Destination,
		Items:             items,
		ManifestSignature: sig,
		CreatedAt:         ctx.Time,
	}
	if err := record(tx, ctx, p, StepCreate, StageCreated); err != nil {
		return service.Response{}, err
	}
	return service.JSON(http.StatusCreated, map[string]*Package{"package": p}), nil
}

func checkItems(items []Item) error {
	if len(items) == 0 || len(items) > MaxItems {
		return service.Invalid("items must hold 1-%d items, got %d", MaxItems, len(items))
	}
	seen := make(map[string]bool, len(items))
	for i, it := range items {
		if err := service.CheckID(fmt.Sprintf("items[%d].sku", i), it.SKU); err != nil {
			return err
		}
		if seen[it.SKU] {
			return service.Invalid("items[%d].sku %s is listed twice", i, it.SKU)
		}
		seen[it.SKU] = true
		if err := checkText(fmt.Sprintf("items[%d].name", i), it.Name, 1, MaxItemNameLen); err != nil {
			return err
		}
		if it.Qty < 1 || it.Qty > MaxQty {
			return service.Invalid("items[%d].qty must be 1-%d, got %d", i, MaxQty, it.Qty)
		}
	}
	return nil
}

func scanPackage(tx *service.Tx, ctx *service.Context, req *service.Request) (service.Response, error) {
	var body struct{}
	if err := req.DecodeOptional(&body); err != nil {
		return service.Response{}, err
	}
	p, err := openStep(tx, req, StepScan)
	if err != nil {
		return service.Response{}, err
	}
	if err := record(tx, ctx, p, StepScan, StageScanned); err != nil {
		return service.Response{}, err
	}
	return service.JSON(http.StatusOK, struct {
		PackageID     string `json:"package_id"`
		ExpectedItems []Item `json:"expected_items"`
	}{p.ID, p.Items}), nil
}

func validatePackage(tx *service.Tx, ctx *service.Context, req *service.Request) (service.Response, error) {
	var body struct {
		ObservedItems *[]ObservedItem `json:"observed_items"`
	}
	if err := req.Decode(&body); err != nil {
		return service.Response{}, err
	}
	if body.ObservedItems == nil {
		return service.Response{}, service.Invalid("observed_items is required ([] if nothing was found)")
	}
	observed := *body.ObservedItems
	if len(observed) > MaxItems {
		return service.Response{}, service.Invalid("observed_items must hold at most %d items, got %d", MaxItems, len(observed))
	}
	counted := make(map[string]int64, len(observed))
	for i, it := range observed {
		if err := service.CheckID(fmt.Sprintf("observed_items[%d].sku", i), it.SKU); err != nil {
			return service.Response{}, err
		}
		if _, dup := counted[it.SKU]; dup {
			return service.Response{}, service.Invalid("observed_items[%d].sku %s is listed twice", i, it.SKU)
		}
		if it.Qty < 0 || it.Qty > MaxQty {
			return service.Response{}, service.Invalid("observed_items[%d].qty must be 0-%d, got %d", i, MaxQty, it.Qty)
		}
		counted[it.SKU] = it.Qty
	}
	p, err := openStep(tx, req, StepValidate)
	if err != nil {
		return service.Response{}, err
	}

	v := &Validation{Discrepancies: discrepancies(p.Items, observed)}
	v.ContentsMatch = len(v.Discrepancies) == 0
	// The supplier's current key: a key revoked or rotated since creation
	// no longer vouches for the manifest.
	if a, ok := service.LoadActor(tx, p.Supplier); ok {
		v.SignatureValid = ctx.Verify(a.PublicKey, ManifestBytes(p.ID, p.Supplier, p.Destination, p.Items), p.ManifestSignature)
	}
	p.Validation = v
	stage := StageValidated
	if !v.SignatureValid || !v.ContentsMatch {
		stage = StageValidationFailed
	}
	if err := record(tx, ctx, p, StepValidate, stage); err != nil {
		return service.Response{}, err
	}
	return service.JSON(http.StatusOK, v), nil
}

// discrepancies compares observed against expected by SKU; the result is
// sorted by SKU and never nil.
func discrepancies(expected []Item, observed []ObservedItem) []Discrepancy {
	want := make(map[string]int64, len(expected))
	got := make(map[string]int64, len(observed))
	skus := make([]string, 0, len(expected)+len(observed))
	for _, it := range expected {
		want[it.SKU] = it.Qty
		skus = append(skus, it.SKU)
	}
	for _, it := range observed {
		got[it.SKU] = it.Qty
		if _, ok := want[it.SKU]; !ok {
			skus = append(skus, it.SKU)
		}
	}
	slices.Sort(skus)
	out := []Discrepancy{}
	for _, sku := range slices.Compact(skus) {
		if want[sku] != got[sku] {
			out = append(out, Discrepancy{SKU: sku, Expected: want[sku], Observed: got[sku]})
		}
	}
	return out
}

func qcPackage(tx *service.Tx, ctx *service.Context, req *service.Request) (service.Response, error) {
	var body struct {
		Passed *bool           `json:"passed"`
		Notes  string          `json:"notes"`
		Checks json.RawMessage `json:"checks"`
	}
	if err := req.Decode(&body); err != nil {
		return service.Response{}, err
	}
	if body.Passed == nil {
		return service.Response{}, service.Invalid("passed is required")
	}
	if len(body.Notes) > MaxNotesLen {
		return service.Response{}, service.Invalid("notes must be at most %d bytes, got %d", MaxNotesLen, len(body.Notes))
	}
	checks, err := canonicalObject(body.Checks)
	if err != nil {
		return service.Response{}, service.Invalid("checks must be a JSON object: %v", err)
	}
	p, err := openStep(tx, req, StepQC)
	if err != nil {
		return service.Response{}, err
	}
	q := &QC{Passed: *body.Passed, Notes: body.Notes, Checks: checks}
	p.QC = q
	stage := StageQCPassed
	if !q.Passed {
		stage = StageQCFailed
	}
	if err := record(tx, ctx, p, StepQC, stage); err != nil {
		return service.Response{}, err
	}
	return service.JSON(http.StatusOK, q), nil
}

// canonicalObject re-encodes a JSON object with keys sorted at every level
// and no insignificant space; numbers keep their literal text. Absent or
// null is the empty object.
func canonicalObject(raw json.RawMessage) (json.RawMessage, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return json.RawMessage("{}"), nil
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return json.RawMessage("{}"), nil
	}
	return json.Marshal(m)
}

func labelPackage(tx *service.Tx, ctx *service.Context, req *service.Request) (service.Response, error) {
	var body struct {
		CourierID string `json:"courier_id"`
	}
	if err := req.Decode(&body); err != nil {
		return service.Response{}, err
	}
	if err := service.CheckID("courier_id", body.CourierID); err != nil {
		return service.Response{}, err
	}
	p, err := openStep(tx, req, StepLabel)
	if err != nil {
		return service.Response{}, err
	}
	c, err := loadCourier(tx, body.CourierID)
	if err != nil {
		return service.Response{}, err
	}
	l := &Label{TrackingNumber: TrackingNumber(ctx.Actor.ID, ctx.Session, ctx.Seq), CourierID: c.ID, Destination: p.Destination}
	p.Label = l
	if err := record(tx, ctx, p, StepLabel, StageLabeled); err != nil {
		return service.Response{}, err
	}
	return service.JSON(http.StatusOK, l), nil
}

func createCourier(tx *service.Tx, ctx *service.Context, req *service.Request) (service.Response, error) {
	var c Courier
	if err := req.Decode(&c); err != nil {
		return service.Response{}, err
	}
	if err := putCourier(tx, &c); err != nil {
		return service.Response{}, err
	}
	return service.JSON(http.StatusCreated, map[string]*Courier{"courier": &c}), nil
}

// putCourier checks a new courier record and writes it.
func putCourier(tx *service.Tx, c *Courier) error {
	if err := service.CheckID("courier id", c.ID); err != nil {
		return err
	}
	if err := checkText("courier name", c.Name, 1, MaxCourierNameLen); err != nil {
		return err
	}
	if c.ActorID != "" {
		if err := service.CheckID("actor_id", c.ActorID); err != nil {
			return err
		}
		a, ok := service.LoadActor(tx, c.ActorID)
		if !ok {
			return service.NotFound("actor %s not found", c.ActorID)
		}
		if a.Role != RoleCourier {
			return service.Invalid("actor %s has role %q, a courier's actor needs role %q", a.ID, a.Role, RoleCourier)
		}
	}
	if _, exists := tx.Get(CourierKey(c.ID)); exists {
		return service.Conflict("courier %s already exists", c.ID)
	}
	ids, _, err := service.Lookup[[]string](tx, CourierIndex)
	if err != nil {
		return err
	}
	index := []string{}
	if ids != nil {
		index = *ids
	}
	if len(index) >= MaxCouriers {
		return service.Precondition("the registry holds %d couriers, the most it may (MaxCouriers)", len(index))
	}
	i, _ := slices.BinarySearch(index, c.ID)
	tx.PutJSON(CourierIndex, slices.Insert(index, i, c.ID))
	tx.PutJSON(CourierKey(c.ID), c)
	return nil
}

// listCouriers answers the whole courier registry, sorted by id.
func listCouriers(tx *service.Tx, ctx *service.Context, req *service.Request) (service.Response, error) {
	ids, _, err := service.Lookup[[]string](tx, CourierIndex)
	if err != nil {
		return service.Response{}, err
	}
	out := []*Courier{}
	if ids != nil {
		for _, id := range *ids {
			c, err := service.Load[Courier](tx, CourierKey(id), "courier "+id)
			if err != nil {
				return service.Response{}, err
			}
			out = append(out, c)
		}
	}
	return service.JSON(http.StatusOK, map[string][]*Courier{"couriers": out}), nil
}

func getPackage(tx *service.Tx, ctx *service.Context, req *service.Request) (service.Response, error) {
	p, err := loadPackage(tx, req.Param("id"))
	if err != nil {
		return service.Response{}, err
	}
	return service.JSON(http.StatusOK, map[string]*Package{"package": p}), nil
}

func getHistory(tx *service.Tx, ctx *service.Context, req *service.Request) (service.Response, error) {
	p, err := loadPackage(tx, req.Param("id"))
	if err != nil {
		return service.Response{}, err
	}
	// "Committed history with L1 references": each step names the L1
	// height and transaction that applied its session. A step whose session
	// L1 has not applied (in the L2 view) has none. The latest
	// MaxHistoryQuery entries are returned; From is the index of the first.
	type l1Ref struct {
		Height int64  `json:"height"`
		TxHash string `json:"tx_hash"`
	}
	type entry struct {
		Event
		L1 *l1Ref `json:"l1,omitempty"`
	}
	// The latest chunks, newest first, until they hold enough events.
	var events []Event
	for n := p.HistoryChunks - 1; n >= 0 && len(events) < MaxHistoryQuery; n-- {
		chunk, err := historyChunk(tx, p, n)
		if err != nil {
			return service.Response{}, err
		}
		events = append(chunk, events...)
	}
	events = events[max(0, len(events)-MaxHistoryQuery):]
	from := p.HistoryLen - len(events)
	out := make([]entry, len(events))
	for i, ev := range events {
		out[i].Event = ev
		if i > 0 && ev.Actor == events[i-1].Actor && ev.Session == events[i-1].Session {
			out[i].L1 = out[i-1].L1
		} else if rec, ok := service.SessionOf(tx, ev.Actor, ev.Session); ok {
			out[i].L1 = &l1Ref{Height: rec.Height, TxHash: rec.TxHash}
		}
	}
	return service.JSON(http.StatusOK, struct {
		PackageID string  `json:"package_id"`
		Total     int     `json:"total"`
		From      int     `json:"from"`
		History   []entry `json:"history"`
	}{p.ID, p.HistoryLen, from, out}), nil
}

func getCourier(tx *service.Tx, ctx *service.Context, req *service.Request) (service.Response, error) {
	c, err := loadCourier(tx, req.Param("id"))
	if err != nil {
		return service.Response{}, err
	}
	return service.JSON(http.StatusOK, map[string]*Courier{"courier": c}), nil
}

// Genesis is the application part of the genesis state ("app" in
// service.Registry.InitGenesis). Actors named by couriers must be among the
// genesis actors.
type Genesis struct {
	Couriers []Courier `json:"couriers"`
}

func loadGenesis(tx *service.Tx, raw json.RawMessage) error {
	var g Genesis
	if err := service.DecodeJSON(raw, &g); err != nil {
		return fmt.Errorf("supplychain genesis: %w", err)
	}
	for i := range g.Couriers {
		if err := putCourier(tx, &g.Couriers[i]); err != nil {
			return fmt.Errorf("supplychain genesis: courier %q: %w", truncate(g.Couriers[i].ID), err)
		}
	}
	return nil
}

// DemoGenesis is the genesis of a demo network: every courier actor is a
// registered courier of the same id.
func DemoGenesis(actors []service.Actor) json.RawMessage {
	var g Genesis
	for _, a := range actors {
		if a.Role == RoleCourier {
			g.Couriers = append(g.Couriers, Courier{ID: a.ID, Name: a.Org, ActorID: a.ID})
		}
	}
	return service.MustJSON(g)
}
