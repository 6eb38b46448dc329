// The supply chain's pages of the duet console (service.App.Console): the
// operator's workflow at the scanner, the supplier's signed packages, and
// the auditor's view of a package's committed history. The console's
// shell gives each page a ctx: {duet, ui, identity, error, session,
// get, status, evidence, verify, go}.

const enc = new TextEncoder();

// manifestBytes is what a supplier signs for a package
// (supplychain.ManifestBytes): items sorted by SKU, one line each.
function manifestBytes(id, supplier, destination, items) {
  const sorted = [...items].sort((a, b) => (a.sku < b.sku ? -1 : a.sku > b.sku ? 1 : 0));
  let s = `duet/manifest/v1\n${id}\n${supplier}\n${destination}\n`;
  for (const it of sorted) s += `${it.sku}\t${it.name}\t${it.qty}\n`;
  return enc.encode(s);
}

const stageWords = {
  created: "created by its supplier",
  scanned: "scanned",
  validated: "validated",
  validation_failed: "failed validation",
  qc_passed: "passed quality control",
  qc_failed: "failed quality control",
  labeled: "labeled for its courier",
};

// --- operator ---------------------------------------------------------------

function operator(el, ctx) {
  const { h, fill } = ctx.ui;
  const pkgInput = h("input", { testid: "package-id", placeholder: "scan or type a package id", autocomplete: "off", autofocus: true });
  const statusBox = h("div", { className: "row" });
  const steps = h("ol", { className: "steps", "aria-label": "answered steps" });
  const work = h("div");
  const cert = h("div");
  let s = null; // the session
  let pkg = "";
  let stop = () => {};

  const done = (step, r, text) => steps.append(h("li", { testid: "step-done", dataset: { step } },
    h("strong", {}, step), " ", text || "", h("span", { className: "ms", title: "answer time seen by this browser; receipt checked" }, `${r.ms.toFixed(1)} ms ✓`)));

  // run sends one op, reporting its answer time, or its error in words.
  async function run(step, f) {
    ctx.error(null);
    try {
      const r = await ctx.duet.retrying(f, (msg) => ctx.error(msg));
      ctx.error(null);
      return r;
    } catch (e) {
      ctx.error(e);
      return null;
    }
  }

  const button = (testid, text, onclick, cls) => h("button", { testid, onclick, className: cls || "" }, text);

  async function start() {
    const id = pkgInput.value.trim();
    if (!id) return;
    stop();
    pkg = id;
    s = ctx.session("wf");
    fill(steps);
    fill(work);
    fill(cert);
    const r = await run("start", () => s.start({ package_id: pkg }));
    if (!r) {
      s = null;
      return;
    }
    done("start", r, `session ${s.id} on ${pkg}`);
    const mine = s.id, labelled = () => steps.querySelector('[data-step="label"]');
    stop = ctx.status(statusBox, s.id, (f) => {
      for (const b of work.querySelectorAll("button")) b.disabled = true;
      if (f.status === "committed" && labelled()) certificate(ctx, cert, pkg, mine);
    });
    showControls();
  }

  async function showControls() {
    const expected = h("div");
    const observed = h("div", { className: "row" });
    const notes = h("input", { placeholder: "QC notes", "aria-label": "QC notes" });
    const seal = h("input", { type: "checkbox", checked: true, id: "qc-seal" });
    const courier = h("select", { testid: "courier", "aria-label": "courier" });
    const counts = new Map();
    fill(work,
      h("div", { className: "row" },
        button("scan", "Scan", async () => {
          const r = await run("scan", () => s.do("POST", `/v1/packages/${encodeURIComponent(pkg)}/scan`, {}));
          if (!r) return;
          const items = r.body.expected_items || [];
          let supplier = "";
          try {
            supplier = (await ctx.get(`/v1/packages/${encodeURIComponent(pkg)}`)).package.supplier;
          } catch {}
          done("scan", r, `${items.length} item lines expected${supplier ? `, from ${supplier}` : ""}`);
          fill(expected, h("table", {}, h("tr", {}, h("th", {}, "SKU"), h("th", {}, "item"), h("th", {}, "expected"), h("th", {}, "counted")),
            items.map((it) => {
              const n = h("input", { type: "number", min: 0, value: it.qty, "aria-label": `count of ${it.sku}`, dataset: { sku: it.sku } });
              counts.set(it.sku, n);
              return h("tr", {}, h("td", {}, it.sku), h("td", {}, it.name), h("td", {}, it.qty), h("td", {}, n));
            })));
        }),
        button("validate", "Validate", async () => {
          const items = [...counts.entries()].map(([sku, n]) => ({ sku, qty: Number(n.value) || 0 }));
          const r = await run("validate", () => s.do("POST", `/v1/packages/${encodeURIComponent(pkg)}/validate`, { observed_items: items }));
          if (!r) return;
          const v = r.body;
          done("validate", r, `${v.signature_valid ? "supplier's signature valid" : "supplier's signature INVALID"}, ${v.contents_match ? "contents match" : "contents differ"}`);
          fill(observed,
            h("span", { className: v.signature_valid ? "ok" : "bad" }, v.signature_valid ? "✓ manifest signed by the supplier's registered key" : "✗ the manifest signature does not verify"),
            h("span", { className: v.contents_match ? "ok" : "bad" }, v.contents_match ? "✓ contents match the manifest" : "✗ discrepancies:"),
            (v.discrepancies || []).map((d) => h("span", { className: "bad" }, `${d.sku}: expected ${d.expected}, counted ${d.observed}`)));
        }),
        button("qc-pass", "QC pass", () => qc(true)),
        button("qc-fail", "QC fail", () => qc(false), "danger"),
        courier,
        button("label", "Label", async () => {
          const r = await run("label", () => s.do("POST", `/v1/packages/${encodeURIComponent(pkg)}/label`, { courier_id: courier.value }));
          if (r) done("label", r, `tracking number ${r.body.tracking_number} (${r.body.courier_id})`);
        }),
        button("commit", "Commit", async () => {
          const r = await run("commit", () => s.commit());
          if (r) done("commit", r, "sent to L1");
        }),
        button("abort", "Abort", async () => {
          const r = await run("abort", () => s.abort());
          if (r) done("abort", r, "");
        }, "secondary")),
      expected, observed,
      h("div", { className: "row" }, h("label", { htmlFor: "qc-seal" }, seal, " seal intact"), notes));

    async function qc(passed) {
      const r = await run("qc", () => s.do("POST", `/v1/packages/${encodeURIComponent(pkg)}/qc`,
        { passed, notes: notes.value, checks: { seal: seal.checked ? "intact" : "broken" } }));
      if (r) done("qc", r, passed ? "passed" : "failed");
    }

    try {
      const list = (await ctx.get("/v1/couriers")).couriers;
      fill(courier, list.map((c) => h("option", { value: c.id }, `${c.name} (${c.id})`)));
      if (list.length === 0) fill(courier, h("option", { value: "" }, "no couriers registered"));
    } catch (e) {
      ctx.error(e);
    }
  }

  pkgInput.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") {
      ev.preventDefault();
      start();
    }
  });
  fill(el,
    h("h1", {}, "Operator"),
    h("p", { className: "muted" }, "Scan a package (or type its id and press Enter) to open a session; each step is answered at once by this node and signed by you; Commit sends the session to L1."),
    h("div", { className: "row" }, pkgInput, button("start-session", "Start session", start)),
    statusBox, steps, work, cert);
}

// certificate shows a package's completion certificate (text and QR code,
// for the shipping label) once the session that wrote it last is the one
// expected (or any, if session is ""). The node answers 503 until the
// block after next has its commit, a few seconds.
async function certificate(ctx, el, pkg, session) {
  const { h, fill } = ctx.ui;
  fill(el, h("p", { className: "muted" }, "Waiting for the completion certificate…"));
  const url = `/v1/packages/${encodeURIComponent(pkg)}/certificate`;
  for (let i = 0; i < 40; i++) {
    const res = await fetch(url);
    const text = await res.text();
    if (res.ok && (!session || text.includes(`/${session}\n`))) {
      fill(el, h("div", { className: "card certificate", testid: "certificate" },
        h("img", { src: `${url}?format=png`, alt: `QR code of the completion certificate of ${pkg}`, testid: "certificate-qr" }),
        h("div", {}, h("p", {}, h("strong", {}, "Completion certificate"), " for the shipping label: anyone can check it with ",
          h("code", {}, "duet verify --node"), " or on the Auditor page."),
          h("pre", { testid: "certificate-text" }, text))));
      return text;
    }
    let code = "";
    try {
      code = JSON.parse(text).error.code;
    } catch {}
    if (res.ok ? false : code !== "NOT_YET") break; // only "not provable yet" is worth waiting for
    await new Promise((r) => setTimeout(r, 500));
  }
  fill(el, h("p", { className: "muted" }, "No completion certificate yet."));
  return "";
}

// --- supplier ---------------------------------------------------------------

function supplier(el, ctx) {
  const { h, fill } = ctx.ui;
  const id = h("input", { testid: "new-package-id", placeholder: "package id, e.g. PKG-42", autocomplete: "off" });
  const dest = h("input", { testid: "new-package-destination", placeholder: "destination", value: "DC Jakarta" });
  const items = h("textarea", { testid: "new-package-items", placeholder: "one item per line: sku,name,qty\nSKU-1,Widget,3" });
  const out = h("div");

  async function create(ev) {
    ev.preventDefault();
    ctx.error(null);
    const list = [];
    for (const [i, line] of items.value.split("\n").entries()) {
      if (!line.trim()) continue;
      const [sku, name, qty] = line.split(",").map((x) => (x || "").trim());
      if (!sku || !name || !/^\d+$/.test(qty || "")) {
        ctx.error(`Line ${i + 1} is not "sku,name,qty": ${line}`);
        return;
      }
      list.push({ sku, name, qty: Number(qty) });
    }
    const pkg = id.value.trim();
    const body = { id: pkg, destination: dest.value.trim(), items: list };
    const sig = await crypto.subtle.sign({ name: "Ed25519" }, ctx.identity.key, manifestBytes(pkg, ctx.identity.actor, body.destination, list));
    body.manifest_signature = ctx.duet.b64(sig);
    fill(out, h("p", {}, "Signed the manifest; waiting for L1…"));
    try {
      // Direct mode: one op, answered once L1 has applied it.
      const s = ctx.session("create");
      const r = await ctx.duet.retrying(() => s.do("POST", "/v1/packages", body), (m) => ctx.error(m));
      fill(out, h("div", { className: "card", testid: "created" },
        h("p", {}, ctx.ui.pill("committed", `committed at height ${r.height}`), " ", h("strong", {}, pkg), ` to ${body.destination}`),
        h("p", { className: "muted" }, `tx ${r.tx}`, ` · answered in ${r.ms.toFixed(0)} ms`),
        h("ul", {}, list.map((it) => h("li", {}, `${it.qty} × ${it.name} (${it.sku})`)))));
    } catch (e) {
      fill(out);
      ctx.error(e);
    }
  }

  fill(el,
    h("h1", {}, "Supplier"),
    h("p", { className: "muted" }, "Register a package: the manifest is signed here, with your key, and the package is final once L1 has applied it."),
    h("form", { onsubmit: create, className: "stack" },
      h("label", {}, "Package id ", id), h("label", {}, "Destination ", dest),
      h("label", { className: "wide" }, "Items", items),
      h("button", { type: "submit", testid: "create-package" }, "Create package")),
    out);
}

// --- auditor ----------------------------------------------------------------

function auditor(el, ctx) {
  const { h, fill } = ctx.ui;
  const search = h("input", { testid: "package-search", placeholder: "package id", autocomplete: "off" });
  const out = h("div");
  const evidence = h("div");
  const trustBox = h("div");
  const paste = h("div");
  const actors = new Map();

  async function actor(id) {
    if (!actors.has(id)) actors.set(id, ctx.get(`/v1/actors/${encodeURIComponent(id)}`).then((r) => r.actor).catch(() => ({ id, role: "?", org: "?" })));
    return actors.get(id);
  }

  async function find() {
    const pkg = search.value.trim();
    if (!pkg) return;
    ctx.error(null);
    fill(out, h("p", { className: "muted" }, "Loading…"));
    try {
      const q = encodeURIComponent(pkg);
      const [p, hist, net] = await Promise.all([
        ctx.get(`/v1/packages/${q}?view=committed`),
        ctx.get(`/v1/packages/${q}/history?view=committed`),
        ctx.get("/v1/network"),
      ]);
      const checks = h("div");
      const seen = new Set(); // one proof button per session
      const rows = await Promise.all(hist.history.map(async (e) => {
        const a = await actor(e.actor);
        return h("tr", { testid: "history-entry" },
          h("td", {}, ctx.ui.time(e.time)),
          h("td", {}, h("strong", {}, e.step)),
          h("td", {}, e.actor, h("div", { className: "muted" }, `${a.role}, ${a.org}`)),
          h("td", {}, h("code", {}, e.session), h("div", { className: "muted" }, `op ${e.seq}`)),
          h("td", {}, e.l1 ? [`height ${e.l1.height}`, h("div", {}, h("code", { title: e.l1.tx_hash }, ctx.ui.short(e.l1.tx_hash, 16))),
            seen.has(e.session) ? null : (seen.add(e.session), ctx.verify.proofButton(checks, e.actor, e.session, "check proof"))] : "not on L1 yet"));
      }));
      const certBox = h("div"), certOut = h("div");
      const pk = p.package;
      fill(out,
        h("div", { className: "card" },
          h("p", {}, h("strong", {}, pk.id), ` to ${pk.destination}: ${stageWords[pk.stage] || pk.stage}`),
          pk.label ? h("p", {}, `Label: ${pk.label.tracking_number}, courier ${pk.label.courier_id}`) : null,
          h("p", { className: "muted" }, `Supplier ${pk.supplier}; ${hist.total} steps in all.`)),
        h("table", { testid: "history" },
          h("tr", {}, ["when", "what", "who", "session", "L1"].map((t) => h("th", {}, t))), rows),
        checks,
        h("p", { className: "muted" },
          `Where this comes from: this node's own follower of L1 (L1 height ${net.height}). Do not take its word: `,
          "check proof fetches the session's proof and checks it in this browser against the validator set you pinned."),
        certBox);
      const text = await certificate(ctx, certBox, pkg, "");
      if (text) certBox.append(h("div", { className: "row" }, h("button", { className: "secondary", testid: "check-certificate", onclick: () => checkCertificate(ctx, certOut, text) }, "Check the certificate here")), certOut);
    } catch (e) {
      fill(out);
      ctx.error(e);
    }
  }
  search.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") {
      ev.preventDefault();
      find();
    }
  });
  fill(el,
    h("h1", {}, "Auditor"),
    h("p", { className: "muted" }, "No key needed: the committed record is public. Search a package for its history on L1."),
    h("div", { className: "row" }, search, h("button", { onclick: find }, "Search")),
    trustBox, out,
    h("h2", {}, "Check a proof or a receipt you hold"),
    h("p", { className: "muted" }, "Paste a session proof (from GET /v1/sessions/{id}/proof, any node), and optionally a receipt an L2 node gave you: a receipt that L1's outcome contradicts is a broken promise by that node."),
    paste, evidence);
  ctx.verify.trustPanel(trustBox).catch((e) => ctx.error(e));
  ctx.verify.pastePanel(paste);
  ctx.evidence(evidence);
}

// checkCertificate checks a certificate in this browser: the proof it
// names, fetched from this node (trusted for nothing), by its hash, and
// what the proof says.
async function checkCertificate(ctx, el, text) {
  const { h, fill } = ctx.ui;
  fill(el, h("p", { className: "muted" }, "Fetching the proof the certificate names…"));
  try {
    const c = await ctx.verify.checkCertificate(text);
    const res = h("div");
    if (c.result) ctx.verify.show(res, c.result);
    fill(el, h("p", { testid: "certificate-result", dataset: { valid: c.valid ? "true" : "false", failed: c.failed }, className: c.valid ? "ok" : "bad" },
      c.valid ? "✓ The certificate names this proof, and the proof says what the certificate says." : `✗ ${c.failed}: ${c.error}`), res);
  } catch (e) {
    fill(el, h("p", { className: "bad" }, e.message));
  }
}

export const pages = [
  { id: "operator", title: "Operator", roles: ["operator"], render: operator },
  { id: "supplier", title: "Supplier", roles: ["supplier"], render: supplier },
  { id: "auditor", title: "Auditor", render: auditor },
];
