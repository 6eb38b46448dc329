// verify.js: session proofs checked in this browser, by the WebAssembly
// build of duet's own Go verifier (package proof, the code of `duet
// verify`), against a genesis validator set the user pinned. Nothing here
// trusts the node: it only carries the proof.
//
// The trusted set is a hash (of the genesis validator set) kept per chain
// in this browser: pasted by the user (from `duet verify --genesis G
// --trust`), or taken from the node the first time (trust on first use,
// shown with a warning until the user confirms it).

import { h, fill, pill } from "./ui.js";
import { get } from "./duet.js";

let loading = null; // the verifier, loaded once: {api, ms}

// verifier loads the WebAssembly verifier (about 7 MB gzipped) on first
// use.
export function verifier() {
  if (!loading) {
    loading = (async () => {
      const t0 = performance.now();
      if (!globalThis.Go) {
        await new Promise((ok, fail) => {
          const s = document.createElement("script");
          s.src = "/console/wasm_exec.js";
          s.onload = ok;
          s.onerror = () => fail(new Error("could not load the verifier's runtime"));
          document.head.append(s);
        });
      }
      const go = new globalThis.Go();
      const { instance } = await WebAssembly.instantiateStreaming(fetch("/console/verify.wasm"), go.importObject);
      go.run(instance);
      if (!globalThis.duetVerifier) throw new Error("the verifier did not start");
      return { api: globalThis.duetVerifier, ms: performance.now() - t0 };
    })();
    loading.catch(() => (loading = null));
  }
  return loading;
}

// --- trust ------------------------------------------------------------------

const key = (chain) => `duet.trust.${chain}`;

// trust returns what this browser trusts for the node's chain:
// {chain, hash, how: "pinned" | "first-use", node} (node: the hash the node
// reports now), pinning the node's hash on first use.
export async function trust() {
  const n = await get("/v1/network");
  let t = JSON.parse(localStorage.getItem(key(n.chain_id)) || "null");
  if (!t && n.validators_hash) {
    t = { hash: n.validators_hash, how: "first-use" };
    localStorage.setItem(key(n.chain_id), JSON.stringify(t));
  }
  return { chain: n.chain_id, hash: t ? t.hash : "", how: t ? t.how : "", node: n.validators_hash || "" };
}

function pin(chain, hash, how) {
  localStorage.setItem(key(chain), JSON.stringify({ hash, how }));
}

// trustPanel shows the pinned hash, warns while it is trusted on first use
// (or when the node reports another), and lets the user paste one.
export async function trustPanel(el, onChange) {
  const t = await trust();
  const input = h("input", { testid: "trust-hash", placeholder: "validator set hash (64 hex digits)", size: 66, autocomplete: "off" });
  const save = (ev) => {
    ev.preventDefault();
    const v = input.value.trim().toLowerCase();
    if (!/^[0-9a-f]{64}$/.test(v)) {
      fill(msg, h("span", { className: "bad" }, "A validator set hash is 64 hex digits."));
      return;
    }
    pin(t.chain, v, "pinned");
    trustPanel(el, onChange);
    if (onChange) onChange();
  };
  const msg = h("span");
  fill(el, h("div", { className: "card", testid: "trust" },
    h("p", {}, "Proofs are checked against the genesis validator set of ", h("strong", {}, t.chain), ": ",
      h("code", { testid: "trusted-hash" }, t.hash || "none yet")),
    t.how === "first-use"
      ? h("p", { className: "warn", testid: "trust-warning" }, "⚠ Trusted on first use: this hash came from this node. ",
        "Compare it with what `duet verify --genesis genesis.json --trust` prints on a genesis file you got from your network, and paste it below to pin it.")
      : h("p", { className: "ok" }, "✓ Pinned by you."),
    t.node && t.hash && t.node !== t.hash
      ? h("p", { className: "bad", testid: "trust-mismatch" }, `⚠ This node reports another validator set (${t.node}): it may be of another network, or lying.`) : null,
    h("form", { onsubmit: save }, input, h("button", { type: "submit", testid: "trust-pin" }, "Pin"), msg)));
  return t;
}

// --- checks -------------------------------------------------------------------

const checkWords = {
  format: "the document is a canonical duet/proof/v1",
  chain_id: "it is of the trusted chain",
  light_block: "more than 2/3 of the trusted validator set signed block H+1 (every signature checked)",
  header: "block H is the one block H+1 follows (light.VerifyBackwards)",
  tx_inclusion: "the transaction is in block H (TxProof against DataHash)",
  verdict: "L1's verdict on the bundle (result against LastResultsHash)",
  state_before: "the actor's and the node's keys (ICS23 against block H's AppHash)",
  node_signature: "the L2 node signed the bundle",
  ops: "every op: its signed bytes, the actor's signature, the op chain, the answers",
  results: "the results the node claimed against L1's re-execution",
  state_after: "the session record and every key it wrote (ICS23 against AppHash of H+1)",
  receipts: "the node's receipts",
};

// trustFor returns the trust for the chain a proof names: this node's
// chain's (pinned on first use), or one the user pinned before. A proof of
// another chain is never trusted on this node's word.
async function trustFor(chain) {
  const t = await trust();
  if (!chain || chain === t.chain) {
    if (!t.hash) throw new Error("no trusted validator set: paste its hash first");
    return t;
  }
  const pinned = JSON.parse(localStorage.getItem(key(chain)) || "null");
  if (!pinned) throw new Error(`The proof is of chain ${chain}, and no validator set of that chain is pinned in this browser (this node is of ${t.chain}).`);
  return { chain, hash: pinned.hash, how: pinned.how, node: "" };
}

function chainOf(doc) {
  try {
    return JSON.parse(doc).chain_id || "";
  } catch {
    return "";
  }
}

// check verifies a proof document (text) against the trusted hash of its
// chain and returns the report (and, given a receipt, the promise).
export async function check(doc, receipt) {
  const t = await trustFor(chainOf(doc));
  const { api, ms: loadMs } = await verifier();
  const t0 = performance.now();
  const out = JSON.parse(receipt ? api.receipt(doc, t.chain, t.hash, receipt) : api.verify(doc, t.chain, t.hash));
  const ms = performance.now() - t0;
  const r = { report: out, promise: null, error: "", ms, loadMs, trust: t };
  if (receipt) Object.assign(r, { report: out.report, promise: out.promise, error: out.error || "" });
  if (!r.report || r.report.valid === undefined) throw new Error(out.error || "the verifier gave no report");
  return r;
}

// checkCertificate fetches the canonical proof a certificate names from this
// node (trusted for nothing) and checks both with the Go code of
// proof.VerifyCertificate: the proof's hash, the proof, and that it says
// what the certificate says. It returns {valid, failed, error, result}.
export async function checkCertificate(text) {
  text = text.replace(/\r\n/g, "\n");
  if (!text.endsWith("\n")) text += "\n";
  const line = (name) => (text.split("\n").find((l) => l.startsWith(name + " ")) || "").slice(name.length + 1);
  const [actor, session] = line("session").split("/");
  const doc = await fetchProof(actor || "", session || "", true);
  const t = await trustFor(line("chain"));
  const { api, ms: loadMs } = await verifier();
  const t0 = performance.now();
  const out = JSON.parse(api.certificate(doc, t.chain, t.hash, text));
  const ms = performance.now() - t0;
  if (!out.report && !out.failed) throw new Error(out.error || "the verifier gave no answer");
  return { valid: !out.failed, failed: out.failed || "", error: out.error || "",
    result: out.report ? { report: out.report, promise: null, error: "", ms, loadMs, trust: t } : null };
}

// show renders a check's result: valid or not, in words, and what was
// checked.
export function show(el, r) {
  const rep = r.report;
  const valid = rep && rep.valid;
  fill(el, h("div", { className: "card", testid: "proof-result", dataset: { valid: valid ? "true" : "false", failed: rep ? rep.failed || "" : "" } },
    h("p", {}, valid ? pill("committed", "✓ proof valid") : pill("rejected", "✗ proof invalid"),
      " ", h("span", { className: "muted" }, `checked in this browser in ${r.ms.toFixed(0)} ms${r.loadMs ? ` (verifier loaded in ${r.loadMs.toFixed(0)} ms)` : ""}, against `),
      r.trust.how === "first-use"
        ? h("strong", { className: "warn" }, `⚠ a validator set of ${r.trust.chain} trusted on first use (this node's word)`)
        : h("span", { className: "muted" }, `your pinned validator set of ${r.trust.chain}`)),
    valid
      ? h("p", {}, `Session ${rep.session} of ${rep.actor}, ${rep.ops} ops via ${rep.node}: `, h("strong", {}, rep.outcome),
        ` at height ${rep.height} of ${rep.chain_id}, signed by ${rep.signed} of the voting power.`)
      : h("p", { className: "bad", testid: "proof-failed" }, `Failed check: ${rep ? rep.failed : "?"}: ${rep ? rep.error : r.error}`),
    rep && rep.evidence ? h("p", { className: "bad" }, `Evidence on L1: node ${rep.evidence.node} claimed ${rep.evidence.claimed} for op ${rep.evidence.seq}; re-execution gives ${rep.evidence.actual}.`) : null,
    r.promise ? h("p", { testid: "promise", className: r.promise.broken ? "bad" : r.promise.kept ? "ok" : "" },
      r.promise.broken ? `Broken promise by node ${r.promise.node}: ${r.promise.evidence}`
        : r.promise.kept ? `Promise kept by node ${r.promise.node}: ${r.promise.evidence}` : `Not attributable to node ${r.promise.node}: ${r.promise.evidence}`) : null,
    r.error && rep && rep.valid ? h("p", { className: "bad", testid: "receipt-error" }, r.error) : null,
    rep && rep.checks && rep.checks.length ? h("details", {}, h("summary", {}, `${rep.checks.length} checks passed`),
      h("ul", { testid: "proof-checks" }, rep.checks.map((c) => h("li", { dataset: { check: c } }, h("code", {}, c), " ", checkWords[c] || "")))) : null,
    rep && rep.proof_hash ? h("p", { className: "muted" }, "Proof hash ", h("code", { testid: "proof-hash" }, rep.proof_hash)) : null));
}

// proofButton is a button that fetches the proof of a session from this
// node and checks it here, showing the result in out.
export function proofButton(out, actor, session, label) {
  return h("button", { className: "secondary", testid: "check-proof", dataset: { session },
    onclick: async () => {
      fill(out, h("p", { className: "muted" }, "Fetching the proof and the verifier…"));
      try {
        const doc = await fetchProof(actor, session, false);
        show(out, await check(doc));
      } catch (e) {
        fill(out, h("p", { className: "bad" }, e.message));
      }
    } }, label || "Check proof here");
}

// fetchProof gets a proof's text, waiting while the node says it is not
// provable yet (a few seconds after the session's block).
export async function fetchProof(actor, session, canonical) {
  for (let i = 0; ; i++) {
    const res = await fetch(`/v1/sessions/${encodeURIComponent(session)}/proof?actor=${encodeURIComponent(actor)}${canonical ? "&canonical=1" : ""}`);
    const text = await res.text();
    if (res.ok) return text;
    let msg = text, code = "";
    try {
      ({ message: msg, code } = JSON.parse(text).error);
    } catch {}
    if ((code !== "NOT_YET" && code !== "NOT_FINAL") || i >= 60) throw new Error(`The node gave no proof: ${msg}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

// pastePanel lets the user check any proof document, and optionally a
// receipt against it (an L2 node's promise), or a completion certificate
// (whose proof it fetches from this node).
export function pastePanel(el) {
  const doc = h("textarea", { testid: "proof-input", placeholder: "a proof document (duet/proof/v1 JSON), or a completion certificate (duet-cert/v1)", spellcheck: false });
  const rc = h("textarea", { testid: "receipt-input", placeholder: "optional: a receipt (the Duet-Receipt header, as JSON or base64) to judge against the proof", spellcheck: false });
  const out = h("div");
  const go = async (ev) => {
    ev.preventDefault();
    fill(out, h("p", { className: "muted" }, "Checking…"));
    try {
      if (/^duet-cert\/v1\r?\n/.test(doc.value)) {
        const c = await checkCertificate(doc.value);
        const res = h("div");
        if (c.result) show(res, c.result);
        fill(out, h("p", { testid: "certificate-result", dataset: { valid: c.valid ? "true" : "false", failed: c.failed }, className: c.valid ? "ok" : "bad" },
          c.valid ? "✓ The certificate names this proof, and the proof says what the certificate says." : `✗ ${c.failed}: ${c.error}`), res);
        return;
      }
      let receipt = rc.value.trim();
      if (receipt && !receipt.startsWith("{")) receipt = atob(receipt);
      show(out, await check(doc.value, receipt || ""));
    } catch (e) {
      fill(out, h("p", { className: "bad" }, e.message));
    }
  };
  fill(el, h("form", { onsubmit: go, className: "stack" },
    h("label", { className: "wide" }, "Proof or certificate", doc), h("label", { className: "wide" }, "Receipt", rc),
    h("button", { type: "submit", testid: "check-pasted" }, "Check")), out);
}
