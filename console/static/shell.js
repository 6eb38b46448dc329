// shell.js: the console's frame, for any app: sign-in, the page bar, the
// error line, the session status, evidence, and the network panel. The
// app's pages come from /console/app/app.js (service.App.Console), which
// exports `pages`: [{id, title, roles?, render(el, ctx)}].

import * as duet from "./duet.js";
import * as ui from "./ui.js";
import * as verify from "./verify.js";

const { h, fill } = ui;
const $ = (sel) => document.querySelector(sel);

let identity = null; // {actor, key, pub, role, org}
let startup = null; // an error met while starting, shown on the first page
let appPages = [];
let info = { app: { name: "duet" } };

// --- the error line -------------------------------------------------------

function showError(e) {
  const el = $("#error");
  if (!e) {
    el.hidden = true;
    fill(el);
    return;
  }
  el.hidden = false;
  fill(el, typeof e === "string" ? e : e.message);
}

// --- identity -------------------------------------------------------------

// signIn checks a key against the actor's registered record before it is
// kept: a wrong key or an unknown actor is said at once, not at the first
// op.
async function signIn(actor, key, pub) {
  let rec;
  try {
    rec = (await duet.get(`/v1/actors/${encodeURIComponent(actor)}`)).actor;
  } catch (e) {
    if (e.status === 404) throw new Error(`${actor} is not a registered actor on this network.`);
    throw e;
  }
  if (rec.revoked) throw new Error(`${actor} was revoked: it can sign nothing more.`);
  if (rec.public_key !== pub) {
    throw new Error(`This key is not the one registered for ${actor}: ops signed with it would be refused. Check the link or the key.`);
  }
  identity = { actor, key, pub, role: rec.role, org: rec.org };
  await duet.saveIdentity({ actor, key, pub });
}

async function restore() {
  const saved = await duet.loadIdentity().catch(() => null);
  if (!saved) return;
  try {
    await signIn(saved.actor, saved.key, saved.pub);
  } catch (e) {
    identity = null;
    startup = e;
  }
}

// A sign-in link: #actor=ID&key=SEED (URLSearchParams form). The key is
// imported, kept in IndexedDB as a non-extractable CryptoKey, and the
// fragment is removed from the address bar at once.
// It may arrive when the page loads, or later in an open tab (a link
// pasted into its address bar changes only the fragment): fromLink
// reports whether the address held one.
async function fromLink() {
  const frag = location.hash.slice(1);
  if (!frag.includes("actor=")) return false;
  const p = new URLSearchParams(frag);
  history.replaceState(null, "", location.pathname + location.search);
  const actor = p.get("actor") || "";
  const seed = p.get("key") || "";
  try {
    identity = null;
    const { key, pub } = await duet.importSeed(seed);
    await signIn(actor, key, pub);
  } catch (e) {
    startup = e;
  }
  return true;
}

async function signOut() {
  await duet.clearIdentity();
  identity = null;
  render("signin");
}

// --- pages ----------------------------------------------------------------

function ctx() {
  return {
    duet,
    ui,
    identity,
    error: showError,
    session: (prefix) => new duet.Session(identity, duet.newSessionID(prefix)),
    get: duet.get,
    status: sessionStatus,
    evidence,
    verify,
    go: (id) => (location.hash = `#/${id}`),
  };
}

const framework = [
  { id: "sessions", title: "Sessions", render: sessionsPage },
  { id: "evidence", title: "Evidence", render: (el) => evidence(el) },
  { id: "signin", title: "Sign in", render: signInPage, hidden: true },
];

function pages() {
  return [...appPages, ...framework];
}

function current() {
  const id = location.hash.replace(/^#\/?/, "");
  const all = pages();
  if (all.some((p) => p.id === id)) return id;
  if (!identity) return appPages.find((p) => !p.roles)?.id || "signin";
  return (appPages.find((p) => p.roles && p.roles.includes(identity.role)) || appPages[0] || framework[0]).id;
}

let shown = { id: "", actor: null }; // the page on screen, and for whom

// render shows page id (default: the one the address names). The page
// on screen is kept (with what was typed into it) when the address only
// now names it, unless force or the identity changed.
function render(id, force) {
  id = id || current();
  const page = pages().find((p) => p.id === id);
  const actor = identity ? identity.actor : null;
  const same = !force && shown.id === id && shown.actor === actor;
  shown = { id, actor };
  const nav = $("#nav");
  fill(nav, pages().filter((p) => !p.hidden).map((p) =>
    h("a", { href: `#/${p.id}`, className: p.id === id ? "active" : "", testid: `nav-${p.id}` }, p.title)));
  const who = $("#who");
  fill(who, identity
    ? [h("span", { testid: "whoami", title: `${identity.role}, ${identity.org}` }, identity.actor),
       h("span", { className: "muted" }, ` ${identity.role}`),
       h("button", { className: "link", testid: "sign-out", onclick: signOut }, "Sign out")]
    : [h("a", { href: "#/signin", testid: "sign-in" }, "Sign in")]);
  if (same) return;
  const main = $("#page");
  fill(main);
  showError(null);
  if (page.needsKey !== false && page.roles && !identity) {
    fill(main, h("p", {}, "Sign in to use this page. ", h("a", { href: "#/signin" }, "Sign in")));
    return;
  }
  page.render(main, ctx());
}

// --- sign-in page ---------------------------------------------------------

function signInPage(el) {
  const actor = h("input", { id: "signin-actor", testid: "signin-actor", placeholder: "actor id, e.g. operator-1", autocomplete: "off" });
  const seed = h("input", { id: "signin-key", testid: "signin-key", type: "password", placeholder: "key (base64 seed)", autocomplete: "off" });
  const out = h("div", { className: "newkey" });
  const form = h("form", {
    onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        const { key, pub } = await duet.importSeed(seed.value);
        seed.value = "";
        await signIn(actor.value.trim(), key, pub);
        location.hash = "#/";
        render();
      } catch (e) {
        showError(e);
      }
    },
  },
  h("label", { htmlFor: "signin-actor" }, "Actor"), actor,
  h("label", { htmlFor: "signin-key" }, "Key"), seed,
  h("button", { type: "submit", testid: "signin-submit" }, "Sign in"));
  const gen = h("button", {
    testid: "new-key",
    onclick: async () => {
      const k = await duet.newKey();
      const id = h("input", { placeholder: "the actor id an admin registers it as" });
      fill(out,
        h("p", {}, "A new key was made in this browser; its private half cannot leave it. Give an admin the public key to register an actor with it:"),
        h("code", { testid: "new-key-public" }, k.pub),
        h("form", {
          onsubmit: async (ev) => {
            ev.preventDefault();
            try {
              await signIn(id.value.trim(), k.key, k.pub);
              location.hash = "#/";
              render();
            } catch (e) {
              showError(e);
            }
          },
        }, id, h("button", { type: "submit" }, "Use it, once registered")));
    },
  }, "New key");
  fill(el,
    h("h1", {}, "Sign in"),
    h("p", { className: "muted" }, "Your key stays in this browser: it signs every op here and is never sent to the node. A sign-in link from duet up does this for you."),
    form, h("h2", {}, "No key yet?"), gen, out);
}

// --- sessions page --------------------------------------------------------

function sessionsPage(el, c) {
  const id = h("input", { placeholder: "session id", testid: "session-search" });
  const actor = h("input", { placeholder: "actor (for sessions L1 committed)", value: identity ? identity.actor : "" });
  const out = h("div");
  const look = async () => {
    try {
      const q = actor.value.trim() ? `?actor=${encodeURIComponent(actor.value.trim())}` : "";
      const v = (await duet.get(`/v1/sessions/${encodeURIComponent(id.value.trim())}${q}`)).session;
      fill(out,
        h("p", {}, ui.pill(v.status), " ", v.final ? duet.explainFinal(v.final) : "", v.final && v.final.l1 ? h("code", {}, " tx ", ui.short(v.final.l1.tx_hash)) : ""),
        h("ol", { start: 0 }, (v.ops || []).map((o) => h("li", {}, `${o.method} ${o.path} → ${o.status}`, h("span", { className: "muted" }, ` ${ui.time(o.time)}`)))));
    } catch (e) {
      fill(out);
      c.error(e);
    }
  };
  fill(el, h("h1", {}, "Sessions"),
    h("form", { onsubmit: (ev) => (ev.preventDefault(), look()) }, id, actor, h("button", { type: "submit" }, "Look up")), out);
}

// sessionStatus shows a session's status, live from its event stream:
// open → committing → committed at height H (tx) / rejected, in words.
// It returns a function that stops following.
function sessionStatus(el, id, onFinal) {
  const show = (status, text) => fill(el, h("span", { testid: "session-status", className: `pill ${status}` }, text || status));
  show("open");
  return duet.follow(id, (ev) => {
    if (ev.type === "status") show(ev.status);
    if (ev.type === "final") {
      const f = duet.final(ev.final);
      show(f.status, duet.explainFinal(ev.final));
      if (f.tx) el.append(h("code", { className: "tx", title: f.tx }, ` tx ${ui.short(f.tx, 16)}`));
      if (onFinal) onFinal(f);
    }
  }, () => showError("Lost the session's event stream: the node may have gone away."));
}

// --- evidence -------------------------------------------------------------

async function evidence(el) {
  const box = h("div", { testid: "evidence" }, "Loading…");
  fill(el, h("h2", {}, "Evidence against L2 nodes"), box);
  try {
    const list = await duet.get("/v1/evidence");
    if (!list.length) {
      fill(box, h("p", { className: "muted" }, "None: L1 has caught no L2 node claiming results it did not compute."));
      return;
    }
    fill(box, h("table", {},
      h("tr", {}, ["node", "actor", "session", "height", "first differing op"].map((t) => h("th", {}, t))),
      list.map((ev) => h("tr", { testid: "evidence-entry" },
        h("td", {}, ev.node), h("td", {}, ev.actor), h("td", {}, ev.session), h("td", {}, ev.height), h("td", {}, ev.seq)))));
  } catch (e) {
    fill(box, h("p", {}, e.message));
  }
}

// --- network panel ----------------------------------------------------------

let down = false;

async function network() {
  const panel = $("#network");
  try {
    const n = await duet.get("/v1/network");
    if (down) {
      down = false;
      $("#down").hidden = true;
    }
    fill(panel,
      h("h2", {}, "Network"),
      h("p", {}, "L1 height ", h("strong", { testid: "l1-height" }, n.height), h("span", { className: "muted" }, ` · ${n.chain_id || ""}`)),
      h("div", { className: "validators", testid: "validators" },
        (n.validators || []).map((v) => h("span", {
          className: `dot ${v.signed_last ? "on" : "off"}`,
          title: `${v.name || ui.short(v.address)}: ${v.signed_last ? "signed" : "did not sign"} the last block`,
        }, v.name || ui.short(v.address, 6)))),
      h("p", {}, `This L2 node (${n.node}): `, h("span", { testid: "queue" }, n.queue), " commits queued", n.ready ? "" : h("strong", {}, " · not ready")),
      ui.chart([
        { name: "step", cls: "step", points: n.steps || [] },
        { name: "finality", cls: "finality", points: n.finality || [] },
      ]),
      h("p", { className: "legend" }, h("span", { className: "step" }, "● step"), " ", h("span", { className: "finality" }, "● finality")));
  } catch {
    if (!down) {
      down = true;
      $("#down").hidden = false;
    }
  }
}

// --- start ----------------------------------------------------------------

async function main() {
  // Listen from the start: a sign-in link pasted while the page starts is
  // taken once it has.
  let started;
  const ready = new Promise((r) => (started = r));
  addEventListener("hashchange", async () => {
    await ready;
    if (await fromLink()) {
      render(undefined, true);
      if (startup) showError(startup);
      startup = null;
      return;
    }
    render();
  });
  try {
    info = await duet.get("/v1/network");
  } catch {}
  document.title = `duet · ${info.app ? info.app.name : ""}`;
  $("#app-name").textContent = info.app ? info.app.name : "";
  try {
    const mod = await import("/console/app/app.js");
    appPages = mod.pages || [];
  } catch {
    appPages = []; // an app without pages of its own
  }
  const linked = await fromLink();
  if (!identity && !linked) await restore(); // a link that failed does not fall back to another identity
  render();
  if (startup) showError(startup);
  startup = null;
  network();
  setInterval(network, 2000);
  $("#loading").hidden = true;
  started();
}

main();
