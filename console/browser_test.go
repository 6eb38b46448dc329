package console_test

// These tests drive the console in a real headless Chromium (chromedp),
// against the supply chain running on both layers in this process
// (duettest). Each test starts its own browser; each page of a test lives
// in a browser context of its own, so it has its own IndexedDB and so its
// own signed-in actor. Every page records the requests it sends and the
// Content-Security-Policy violations it meets, and the test fails if one of
// them was for anything but the node. A failed test leaves a screenshot of
// each of its pages in $DUET_SCREENSHOTS (default:
// $TMPDIR/duet-console-screenshots).
//
// The tests need Chromium: apt-get install -y chromium (.ci/run installs
// it). Without it they fail; they are never skipped.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/duet-bft/duet/apps/supplychain"
	"github.com/duet-bft/duet/duettest"
	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service/servicetest"
)

const (
	testTimeout = 60 * time.Second // everything a test does in its browser
	waitTimeout = 20 * time.Second // one wait for the page
)

// newNet runs the supply chain with one actor of each role the tests sign
// in as, and two operators.
func newNet(t *testing.T) *duettest.Net {
	return duettest.New(t, duettest.Config{App: supplychain.App, Actors: map[string]string{
		"supplier-1": supplychain.RoleSupplier, "operator-1": supplychain.RoleOperator, "operator-2": supplychain.RoleOperator,
		"courier-1": supplychain.RoleCourier, "auditor-1": supplychain.RoleAuditor}})
}

// createPackage creates package id from Go, as supplier-1, and returns once
// L1 has applied it.
func createPackage(t *testing.T, n *duettest.Net, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := supplychain.CreatePackage(ctx, n.Client(), n.Signer("supplier-1"), "create-"+id,
		supplychain.NewPackage{ID: id, Destination: "DC Jakarta", Items: []supplychain.Item{{SKU: "SKU-1", Name: "Widget", Qty: 3}}})
	if err != nil {
		t.Fatalf("create %s: %v", id, err)
	}
}

// committedPackage is the package as L1's committed state holds it.
func committedPackage(t *testing.T, n *duettest.Net, id string) supplychain.Package {
	t.Helper()
	resp := n.Query("/v1/packages/" + id)
	if resp.Status != 200 {
		t.Fatalf("GET /v1/packages/%s on L1: got %d %s, want 200", id, resp.Status, resp.Body)
	}
	var body struct{ Package supplychain.Package }
	if err := json.Unmarshal(resp.Body, &body); err != nil {
		t.Fatalf("GET /v1/packages/%s on L1: %v", id, err)
	}
	return body.Package
}

// --- the harness -------------------------------------------------------------

// chromium is the browser the tests drive.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	t.Fatal("no Chromium found (chromium, chromium-browser or google-chrome on PATH): the console's browser tests need it; install it with apt-get install -y chromium")
	return ""
}

// browser is one headless Chromium, for one test and one node.
type browser struct {
	t    *testing.T
	node string          // the node's URL
	ctx  context.Context // the browser's; each page is a child
}

// newBrowser starts Chromium for the node at url; t's cleanup stops it.
func newBrowser(t *testing.T, node string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.WindowSize(1024, 768))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first run starts the browser, bound to ctx (not to a deadline:
	// the cleanups still take screenshots after a test ran out of time).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return &browser{t: t, node: node, ctx: ctx}
}

// page is one tab of the console.
type page struct {
	t    *testing.T
	name string          // in screenshot names and messages; "" for a test's only page
	node string          // the node's URL
	tab  context.Context // the tab's, for the cleanups
	ctx  context.Context // the tab's with the test's deadline, for the test

	mu struct {
		sync.Mutex
		requests []request
		refused  []string // what the Content-Security-Policy refused
		problems []string // script exceptions, console and log errors
	}
}

// request is one the page sent.
type request struct {
	method, url string
	session     string // its Duet-Session header
}

// openConsole starts a browser with one page, at the console.
func openConsole(t *testing.T, n *duettest.Net) *page {
	t.Helper()
	p := newBrowser(t, n.Server.URL).page("")
	p.navigate("/")
	return p
}

// page opens a tab in a new browser context (its own storage, so its own
// identity), recording what it requests. At the end of the test t's
// cleanups check that every request was for the node, and screenshot the
// page if the test failed.
func (b *browser) page(name string) *page {
	t := b.t
	t.Helper()
	tab, cancelTab := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	ctx, cancel := context.WithTimeout(tab, testTimeout)
	t.Cleanup(func() {
		cancel()
		cancelTab()
	})
	p := &page{t: t, name: name, node: b.node, tab: tab, ctx: ctx}
	// Listen's func runs in the loop that reads the tab's messages: it only
	// appends.
	if err := chromedp.Listen(tab, p.record); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("enable network events: %v", err)
	}
	if _, err := chromedp.Call(ctx, log.Enable, struct{}{}); err != nil {
		t.Fatalf("enable log events: %v", err)
	}
	t.Cleanup(p.screenshotIfFailed)
	t.Cleanup(p.checkRequests)
	return p
}

func (p *page) record(ev any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		session, _ := ev.Request.Headers["Duet-Session"].(string)
		p.mu.requests = append(p.mu.requests, request{ev.Request.Method, ev.Request.URL, session})
	case *log.EventEntryAdded:
		// A fetch the policy refuses never becomes a request event; its
		// violation is logged.
		if ev.Entry.Source == log.EntrySourceSecurity {
			p.mu.refused = append(p.mu.refused, ev.Entry.Text)
		} else if ev.Entry.Level == log.EntryLevelError {
			p.mu.problems = append(p.mu.problems, fmt.Sprintf("log: %s (%s)", ev.Entry.Text, ev.Entry.URL))
		}
	case *cdpruntime.EventExceptionThrown:
		d := ev.ExceptionDetails
		text := d.Text
		if d.Exception != nil {
			text += " " + d.Exception.Description
		}
		p.mu.problems = append(p.mu.problems, fmt.Sprintf("exception: %s (%s:%d)", text, d.URL, d.LineNumber+1))
	case *cdpruntime.EventConsoleAPICalled:
		if ev.Type != "error" && ev.Type != "warning" {
			return
		}
		var args []string
		for _, a := range ev.Args {
			if a.Description != "" {
				args = append(args, a.Description)
			} else {
				args = append(args, string(a.Value))
			}
		}
		p.mu.problems = append(p.mu.problems, fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " ")))
	}
}

// requests returns the requests the page sent so far.
func (p *page) requests() []request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.mu.requests)
}

// checkRequests fails the test for every request the page sent elsewhere
// than the node (data: URLs aside), and for every one the policy refused.
func (p *page) checkRequests() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.mu.requests {
		if r.url != p.node && !strings.HasPrefix(r.url, p.node+"/") && !strings.HasPrefix(r.url, "data:") {
			p.t.Errorf("%s: a request left the node: %s %s", p.label(), r.method, r.url)
		}
	}
	for _, text := range p.mu.refused {
		p.t.Errorf("%s: the Content-Security-Policy refused something: %s", p.label(), text)
	}
}

// screenshotIfFailed saves a full-page PNG of a failed test's page, and
// logs what went wrong in the page.
func (p *page) screenshotIfFailed() {
	if !p.t.Failed() {
		return
	}
	p.mu.Lock()
	for _, s := range p.mu.problems {
		p.t.Logf("%s: %s", p.label(), s)
	}
	p.mu.Unlock()
	dir := os.Getenv("DUET_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "duet-console-screenshots")
	}
	name := strings.NewReplacer("/", "_", " ", "_").Replace(p.t.Name())
	if p.name != "" {
		name += "-" + p.name
	}
	path := filepath.Join(dir, name+".png")
	ctx, cancel := context.WithTimeout(p.tab, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	if err == nil {
		err = os.WriteFile(path, png, 0o644)
	}
	if err != nil {
		p.t.Logf("%s: no screenshot: %v", p.label(), err)
		return
	}
	p.t.Logf("%s: screenshot %s", p.label(), path)
}

func (p *page) label() string {
	if p.name == "" {
		return "page"
	}
	return "page " + p.name
}

// fatalf fails the test, saying what the page's error line shows.
func (p *page) fatalf(format string, args ...any) {
	p.t.Helper()
	msg := fmt.Sprintf(format, args...)
	ctx, cancel := context.WithTimeout(p.tab, 5*time.Second)
	defer cancel()
	shown, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](texts(tid("error"))+".filter((t) => t.trim())"))
	if err == nil && len(shown) > 0 {
		msg += fmt.Sprintf("; the page's error line: %q", shown)
	}
	p.t.Fatalf("%s: %s", p.label(), msg)
}

// do runs actions on the page, each wait bounded by waitTimeout.
func (p *page) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, waitTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.fatalf("%s: %v", what, err)
	}
}

// navigate loads path of the node.
func (p *page) navigate(path string) {
	p.t.Helper()
	p.do("open "+path, chromedp.Navigate(p.node+path))
}

// signInWith opens actor's sign-in link with the seed of key's actor (the
// actor's own, unless a test means to get it wrong).
func (p *page) signInWith(actor, key string) {
	p.t.Helper()
	p.signInSeed(actor, base64.StdEncoding.EncodeToString(servicetest.Key(key).Seed()))
}

// signInSeed opens actor's sign-in link with an Ed25519 seed (base64).
func (p *page) signInSeed(actor, seed string) {
	p.t.Helper()
	p.navigate("/#actor=" + actor + "&key=" + url.QueryEscape(seed))
	// The page takes the key off the address bar, whatever it makes of it.
	ctx, cancel := context.WithTimeout(p.ctx, waitTimeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](`!location.href.includes("key=")`,
		chromedp.WithPollingTimeout(waitTimeout))); err != nil {
		p.fatalf("the address bar still holds the key: %v", err)
	}
}

// signIn signs in as actor by its link and waits until the page says so.
func (p *page) signIn(actor string) {
	p.t.Helper()
	p.signInWith(actor, actor)
	if got := p.waitText(tid("whoami"), "."); got != actor {
		p.fatalf("signed in as %s: whoami shows %q", actor, got)
	}
}

// goTo opens one of the console's pages by its link in the page bar.
func (p *page) goTo(id string) {
	p.t.Helper()
	p.do("open the "+id+" page", chromedp.Click(chromedp.CSS(tid("nav-"+id))))
}

// typeInto empties the field testid and types text into it. (chromedp's
// SetValue cannot set "": it drops the empty argument.)
func (p *page) typeInto(testid, text string) {
	p.t.Helper()
	sel := tid(testid)
	p.do(fmt.Sprintf("type %q into %s", text, testid), chromedp.WaitReady(chromedp.CSS(sel)),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector(%s).value = ""`, js(sel))),
		chromedp.SendKeys(chromedp.CSS(sel), text))
}

// click clicks the button testid once it is enabled.
func (p *page) click(testid string) {
	p.t.Helper()
	sel := chromedp.CSS(tid(testid))
	p.do("click "+testid, chromedp.WaitEnabled(sel), chromedp.Click(sel))
}

// waitPresent waits until an element matches sel.
func (p *page) waitPresent(sel string) {
	p.t.Helper()
	p.do("wait for "+sel, chromedp.WaitReady(chromedp.CSS(sel)))
}

// waitText waits until the text of an element matching sel matches the
// JavaScript regular expression re, and returns that text.
func (p *page) waitText(sel, re string) string {
	p.t.Helper()
	expr := fmt.Sprintf(`(() => {
		const re = new RegExp(%s);
		for (const el of document.querySelectorAll(%s)) if (re.test(el.textContent)) return el.textContent;
		return false;
	})()`, js(re), js(sel))
	ctx, cancel := context.WithTimeout(p.ctx, waitTimeout)
	defer cancel()
	text, err := chromedp.Run(ctx, chromedp.Poll[string](expr, chromedp.WithPollingTimeout(waitTimeout)))
	if err != nil {
		p.fatalf("wait for %s to match /%s/: %v; it shows %q", sel, re, err, evaluate[[]string](p, texts(sel)))
	}
	return text
}

// waitCount waits until at least want elements match sel, and returns how
// many do.
func (p *page) waitCount(sel string, want int) int {
	p.t.Helper()
	count := fmt.Sprintf("document.querySelectorAll(%s).length", js(sel))
	ctx, cancel := context.WithTimeout(p.ctx, waitTimeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](fmt.Sprintf("%s >= %d", count, want),
		chromedp.WithPollingTimeout(waitTimeout))); err != nil {
		p.fatalf("wait for %d of %s: %v; there are %d", want, sel, err, evaluate[int](p, count))
	}
	return evaluate[int](p, count)
}

// evaluate returns the value of a JavaScript expression in the page.
func evaluate[T any](p *page, expr string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.tab, 5*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.t.Fatalf("%s: evaluate %s: %v", p.label(), expr, err)
	}
	return v
}

// tid is the selector of a test id.
func tid(id string) string { return "[data-testid=" + id + "]" }

// texts is the expression of the texts of the elements matching sel.
func texts(sel string) string {
	return fmt.Sprintf("[...document.querySelectorAll(%s)].map((e) => e.textContent)", js(sel))
}

// js is s as a JavaScript string literal.
func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// --- the operator's session --------------------------------------------------

// startSession types pkg into the operator page's package field and presses
// Enter.
func (p *page) startSession(pkg string) {
	p.t.Helper()
	p.typeInto("package-id", pkg+kb.Enter)
}

// waitStep waits until the page shows step answered.
func (p *page) waitStep(step string) {
	p.t.Helper()
	p.waitPresent(tid("step-done") + "[data-step=" + step + "]")
}

// sessionOf returns the session id of the page's (last) start of a session.
func (p *page) sessionOf() string {
	p.t.Helper()
	var id string
	for _, r := range p.requests() {
		if r.method == "POST" && r.url == p.node+"/v1/sessions" {
			id = r.session
		}
	}
	if id == "" {
		p.fatalf("the page sent no session start (POST /v1/sessions)")
	}
	return id
}

// --- the tests ---------------------------------------------------------------

// TestConsoleOperatorWorkflow: an operator signs in by link, starts a
// session on a package by typing its id, answers every step by a button,
// and commits; the page follows the session to L1, and L1's state has the
// labeled package.
func TestConsoleOperatorWorkflow(t *testing.T) {
	n := newNet(t)
	createPackage(t, n, "PKG-1")
	p := openConsole(t, n)
	p.signIn("operator-1")
	// The key is kept in the browser: a reload is still signed in.
	p.do("reload", chromedp.Reload())
	if got := p.waitText(tid("whoami"), "."); got != "operator-1" {
		p.fatalf("after a reload whoami shows %q, want operator-1", got)
	}

	p.goTo("operator")
	p.startSession("PKG-1")
	p.waitStep("start")
	for _, s := range []struct{ button, step string }{
		{"scan", "scan"}, {"validate", "validate"}, {"qc-pass", "qc"}, {"label", "label"}, {"commit", "commit"},
	} {
		if s.button == "label" {
			p.waitPresent(tid("courier") + " option")
			if got := evaluate[string](p, fmt.Sprintf("document.querySelector(%s).value", js(tid("courier")))); got != "courier-1" {
				p.fatalf("the courier selected: got %q, want courier-1", got)
			}
		}
		p.click(s.button)
		p.waitStep(s.step)
	}
	status := p.waitText(tid("session-status"), `committed|rejected|aborted`)
	if !strings.Contains(status, "committed at height") {
		p.fatalf("session status: got %q, want committed at height N", status)
	}
	steps := evaluate[[]string](p, fmt.Sprintf("[...document.querySelectorAll(%s)].map((e) => e.dataset.step)", js(tid("step-done"))))
	for _, want := range []string{"start", "scan", "validate", "qc", "label", "commit"} {
		if !slices.Contains(steps, want) {
			t.Errorf("steps shown done: %q; want one for %s", steps, want)
		}
	}

	pkg := committedPackage(t, n, "PKG-1")
	if pkg.Stage != supplychain.StageLabeled || pkg.Label == nil || pkg.Label.TrackingNumber == "" {
		t.Fatalf("PKG-1 on L1: stage %q, label %+v; want labeled with a tracking number", pkg.Stage, pkg.Label)
	}
}

// TestConsoleHolderNamed: while operator-1's session holds a package, a
// second operator who starts one on it is told who holds it, and in which
// session.
func TestConsoleHolderNamed(t *testing.T) {
	n := newNet(t)
	createPackage(t, n, "PKG-1")
	b := newBrowser(t, n.Server.URL)

	first := b.page("operator-1")
	first.signIn("operator-1")
	first.goTo("operator")
	first.startSession("PKG-1")
	first.waitStep("start")
	session := first.sessionOf()

	second := b.page("operator-2")
	second.signIn("operator-2")
	second.goTo("operator")
	second.startSession("PKG-1")
	got := second.waitText(tid("error"), "handled by")
	if !strings.Contains(got, "operator-1") || !strings.Contains(got, session) {
		second.fatalf("the error for a held package: got %q, want operator-1 and session %s named", got, session)
	}
	if n := evaluate[int](second, fmt.Sprintf("document.querySelectorAll(%s).length", js(tid("step-done")))); n != 0 {
		second.fatalf("the refused start shows %d steps done, want none", n)
	}
}

// TestConsoleSupplier: a supplier creates a package on its page, signing
// the manifest in the browser; the page shows it once L1 has applied it.
func TestConsoleSupplier(t *testing.T) {
	n := newNet(t)
	p := openConsole(t, n)
	p.signIn("supplier-1")
	p.goTo("supplier")
	p.typeInto("new-package-id", "PKG-S")
	p.typeInto("new-package-destination", "DC Surabaya")
	p.typeInto("new-package-items", "SKU-1,Widget,3\nSKU-2,Gadget,1")
	p.click("create-package")
	p.waitText("#page", `PKG-S[^]*committed|committed[^]*PKG-S`)

	pkg := committedPackage(t, n, "PKG-S")
	want := []supplychain.Item{{SKU: "SKU-1", Name: "Widget", Qty: 3}, {SKU: "SKU-2", Name: "Gadget", Qty: 1}}
	if pkg.Supplier != "supplier-1" || pkg.Destination != "DC Surabaya" || !slices.Equal(pkg.Items, want) {
		t.Fatalf("PKG-S on L1: supplier %q, destination %q, items %+v; want supplier-1, DC Surabaya, %+v",
			pkg.Supplier, pkg.Destination, pkg.Items, want)
	}
}

// TestConsoleAuditor: with no key, the auditor page shows a package's
// committed history, one entry per step, and the evidence against L2
// nodes.
func TestConsoleAuditor(t *testing.T) {
	n := newNet(t)
	createPackage(t, n, "PKG-1")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s := supplychain.NewSession(n.Client(), n.Signer("operator-1"), "wf-1")
	must := duettest.MustOK(t, "step")
	if err := s.Start(ctx, map[string]string{"package_id": "PKG-1"}); err != nil {
		t.Fatal(err)
	}
	must(s.Scan(ctx, "PKG-1"))
	must(s.Validate(ctx, "PKG-1", []supplychain.ObservedItem{{SKU: "SKU-1", Qty: 3}}, nil))
	must(s.QC(ctx, "PKG-1", true, "", nil))
	must(s.Label(ctx, "PKG-1", "courier-1", nil))
	if err := s.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if f := n.Wait("wf-1", "operator-1"); f.Status != protocol.StatusCommitted {
		t.Fatalf("session wf-1: %+v", f)
	}
	const steps = 5 // create, scan, validate, qc, label

	p := openConsole(t, n)
	p.goTo("auditor")
	p.typeInto("package-search", "PKG-1"+kb.Enter)
	entries := tid("history") + " " + tid("history-entry")
	if got := p.waitCount(entries, steps); got != steps {
		p.fatalf("history entries: got %d, want %d", got, steps)
	}
	p.waitPresent(tid("evidence"))
}

// TestConsoleWrongKey: a sign-in link with another actor's key is refused
// at once, in words, and signs no one in.
func TestConsoleWrongKey(t *testing.T) {
	n := newNet(t)
	p := openConsole(t, n)
	p.signInWith("operator-1", "operator-2")
	p.waitText(tid("error"), "not the one registered")
	whoami := fmt.Sprintf("document.querySelector(%s) !== null", js(tid("whoami")))
	if evaluate[bool](p, whoami) {
		p.fatalf("a wrong key signed someone in")
	}
	// Nothing was kept: a reload is not signed in either. The network
	// panel is drawn after the page bar, so the page has settled.
	p.do("reload", chromedp.Reload())
	p.waitText(tid("l1-height"), `\d`)
	if evaluate[bool](p, whoami) {
		p.fatalf("after a reload, the wrong key signed someone in")
	}
}

// TestConsoleWrongRole: an auditor who starts a session on a package from
// the operator page is told its role may not.
func TestConsoleWrongRole(t *testing.T) {
	n := newNet(t)
	createPackage(t, n, "PKG-1")
	p := openConsole(t, n)
	p.signIn("auditor-1")
	p.goTo("operator")
	p.startSession("PKG-1")
	p.waitText(tid("error"), "role")
}

// TestConsoleNetwork: the network panel shows L1's height; and the
// harness sees the page's requests (the check that none leaves the node
// would pass vacuously otherwise).
func TestConsoleNetwork(t *testing.T) {
	n := newNet(t)
	p := openConsole(t, n)
	text := p.waitText(tid("l1-height"), `^\s*\d+\s*$`)
	if h, err := strconv.ParseInt(strings.TrimSpace(text), 10, 64); err != nil || h < 1 {
		p.fatalf("L1 height: got %q, want a number ≥ 1", text)
	}
	var seen []string
	for _, r := range p.requests() {
		seen = append(seen, strings.TrimPrefix(r.url, p.node))
	}
	for _, want := range []string{"/", "/console/shell.js", "/v1/network"} {
		if !slices.Contains(seen, want) {
			t.Errorf("requests recorded: %q; want %s among them", seen, want)
		}
	}
}
