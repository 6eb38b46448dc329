// duet.js: the protocol in the browser. Identities (Ed25519 keys in
// WebCrypto, kept in IndexedDB, never sent anywhere), signed ops in the
// documented format (docs/http.md), sessions with their op chain, receipts
// checked against the node's key, event streams, and errors in words. No
// DOM here: the pages (shell.js and the app's) use it.

const enc = new TextEncoder();

// --- bytes ---------------------------------------------------------------

export function hex(bytes) {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

export function b64(bytes) {
  let s = "";
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s);
}

export function unb64(s) {
  const t = atob(s.replace(/-/g, "+").replace(/_/g, "/"));
  const out = new Uint8Array(t.length);
  for (let i = 0; i < t.length; i++) out[i] = t.charCodeAt(i);
  return out;
}

function concat(...parts) {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

// opBytes are the bytes an actor signs for op seq of a session
// (protocol.OpBytes): duet/op/v2, session, seq, prev op hash, method and
// path, the body's hash, the expiry.
export async function opBytes(session, seq, prevHex, method, path, body, expires) {
  const text = `duet/op/v2\n${session}\n${seq}\n${prevHex}\n${method} ${path}\n${hex(await sha256(body))}\n${expires}`;
  return enc.encode(text);
}

// resultHash commits to an answer (protocol.ResultHash).
export async function resultHash(status, body) {
  return hex(await sha256(concat(enc.encode(`duet/result/v1\n${status}\n`), body)));
}

function receiptBytes(r) {
  return enc.encode(`duet/receipt/v2\n${r.node}\n${r.actor}\n${r.session}\n${r.seq}\n${r.kind}\n${r.op}\n${r.result}\n${r.time}\n${r.expires}`);
}

// --- identities -----------------------------------------------------------

const PKCS8_PREFIX = [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];

// importSeed turns a 32-byte Ed25519 seed (base64, as cluster.json holds
// it) into a non-extractable signing key and its public key. The seed is
// imported once as extractable only to read the public key off it; that
// key is dropped at once.
export async function importSeed(seedB64) {
  let seed;
  try {
    seed = unb64(seedB64.trim());
  } catch {
    throw new Error("the key is not base64");
  }
  if (seed.length !== 32) throw new Error(`the key is ${seed.length} bytes; an Ed25519 seed is 32`);
  const pkcs8 = concat(new Uint8Array(PKCS8_PREFIX), seed);
  const alg = { name: "Ed25519" };
  const jwk = await crypto.subtle.exportKey("jwk", await crypto.subtle.importKey("pkcs8", pkcs8, alg, true, ["sign"]));
  const key = await crypto.subtle.importKey("pkcs8", pkcs8, alg, false, ["sign"]);
  seed.fill(0);
  pkcs8.fill(0);
  return { key, pub: b64(unb64(jwk.x)) };
}

// newKey makes a key pair in the browser; the private key cannot leave it.
export async function newKey() {
  const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
  return { key: pair.privateKey, pub: b64(await crypto.subtle.exportKey("raw", pair.publicKey)) };
}

const DB = "duet-console";

function db() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore("identity");
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function store(mode, f) {
  const d = await db();
  return new Promise((resolve, reject) => {
    const tx = d.transaction("identity", mode);
    const req = f(tx.objectStore("identity"));
    tx.oncomplete = () => resolve(req && req.result);
    tx.onerror = () => reject(tx.error);
  });
}

// The identity in use: {actor, key (CryptoKey), pub (base64)}; the key
// object itself is stored (IndexedDB keeps CryptoKeys as they are).
export const saveIdentity = (id) => store("readwrite", (s) => s.put(id, "current"));
export const loadIdentity = () => store("readonly", (s) => s.get("current"));
export const clearIdentity = () => store("readwrite", (s) => s.delete("current"));

// --- the node -------------------------------------------------------------

export class HTTPError extends Error {
  constructor(status, body, headers) {
    super(explain(status, body, headers));
    this.status = status;
    this.body = body;
    this.code = body && body.error ? body.error.code : "";
    this.retryAfter = Number(headers && headers.get("Retry-After")) || 0;
  }
}

// get fetches a GET route's JSON, or throws an HTTPError in words.
export async function get(path) {
  let res;
  try {
    res = await fetch(path, { headers: { Accept: "application/json" } });
  } catch {
    throw new HTTPError(0, null, null);
  }
  const body = await res.json().catch(() => null);
  if (!res.ok) throw new HTTPError(res.status, body, res.headers);
  return body;
}

let nodeKey; // this node's receipt key, imported once

export async function node() {
  const n = await get("/v1/node");
  if (!nodeKey) {
    nodeKey = await crypto.subtle.importKey("raw", unb64(n.public_key), { name: "Ed25519" }, false, ["verify"]);
  }
  return n;
}

// kind is what op seq is to its session (service.Classify), as a receipt
// names it.
export function kind(session, seq, method, path) {
  if (seq === 0) return method === "POST" && path === "/v1/sessions" ? "start" : "direct";
  if (method === "POST" && path === `/v1/sessions/${session}/commit`) return "commit";
  if (method === "DELETE" && path === `/v1/sessions/${session}`) return "abort";
  return "step";
}

// checkReceipt verifies a Duet-Receipt header against the node's key and
// the op and answer it acknowledges.
async function checkReceipt(header, actor, session, seq, method, path, expires, opHash, status, body) {
  if (!header) throw new Error("the node gave no receipt");
  const r = JSON.parse(new TextDecoder().decode(unb64(header)));
  if (!nodeKey) await node();
  const ok = await crypto.subtle.verify({ name: "Ed25519" }, nodeKey, unb64(r.signature), receiptBytes(r));
  if (!ok) throw new Error("the receipt's signature does not verify against this node's key");
  if (r.actor !== actor || r.session !== session || r.seq !== seq || r.kind !== kind(session, seq, method, path) || r.expires !== expires || r.op !== opHash || r.result !== (await resultHash(status, body))) {
    throw new Error("the receipt does not match the op and its answer");
  }
  return r;
}

// --- sessions -------------------------------------------------------------

export const OP_LIFETIME_MS = 10 * 60 * 1000;

// Session is one session of the signed-in actor: it keeps the seq and the
// previous op's hash, signs each op, sends it, and checks the receipt.
export class Session {
  constructor(identity, id) {
    this.identity = identity;
    this.id = id;
    this.seq = 0;
    this.prev = "0".repeat(64);
  }

  // do sends the next op. It resolves to {status, body, ms, receipt} for
  // a kept op (2xx, receipt checked), and throws an HTTPError otherwise.
  async do(method, path, body) {
    const raw = enc.encode(body === undefined ? "{}" : typeof body === "string" ? body : JSON.stringify(body));
    const expires = Date.now() + OP_LIFETIME_MS;
    const signed = await opBytes(this.id, this.seq, this.prev, method, path, raw, expires);
    const sig = await crypto.subtle.sign({ name: "Ed25519" }, this.identity.key, signed);
    const t0 = performance.now();
    let res;
    try {
      res = await fetch(path, {
        method,
        body: raw,
        headers: {
          "Content-Type": "application/json",
          "Duet-Actor": this.identity.actor,
          "Duet-Session": this.id,
          "Duet-Seq": String(this.seq),
          "Duet-Expires": String(expires),
          "Duet-Signature": b64(sig),
        },
      });
    } catch {
      throw new HTTPError(0, null, null);
    }
    const bytes = new Uint8Array(await res.arrayBuffer());
    const ms = performance.now() - t0;
    let json = null;
    try {
      json = JSON.parse(new TextDecoder().decode(bytes));
    } catch {}
    if (!res.ok) throw new HTTPError(res.status, json, res.headers);
    const opHash = hex(await sha256(signed));
    const receipt = await checkReceipt(res.headers.get("Duet-Receipt"), this.identity.actor, this.id, this.seq, method, path, expires, opHash, res.status, bytes);
    this.prev = opHash;
    this.seq++;
    return { status: res.status, body: json, ms, receipt, height: res.headers.get("Duet-L1-Height"), tx: res.headers.get("Duet-L1-Tx") };
  }

  start(body) {
    return this.do("POST", "/v1/sessions", body || {});
  }
  commit() {
    return this.do("POST", `/v1/sessions/${encodeURIComponent(this.id)}/commit`, {});
  }
  abort() {
    return this.do("DELETE", `/v1/sessions/${encodeURIComponent(this.id)}`, {});
  }
}

// newSessionID is a fresh session id for the signed-in actor.
export function newSessionID(prefix) {
  const r = crypto.getRandomValues(new Uint8Array(6));
  return `${prefix}-${Date.now().toString(36)}-${hex(r)}`;
}

// follow streams a session's events: onEvent(event) for each, until the
// final one. It returns a function that stops following.
export function follow(id, onEvent, onLost) {
  const es = new EventSource(`/v1/sessions/${encodeURIComponent(id)}/events`);
  for (const type of ["op", "status", "final"]) {
    es.addEventListener(type, (m) => {
      const ev = JSON.parse(m.data);
      onEvent(ev);
      if (type === "final") es.close();
    });
  }
  es.onerror = () => {
    if (es.readyState === EventSource.CLOSED && onLost) onLost();
  };
  return () => es.close();
}

// --- errors in words ------------------------------------------------------

function when(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

const verdicts = {
  CONFLICT: "another session changed what this one read before L1 applied it, and its answers would now differ",
  RESULT_MISMATCH: "L1 computed other results than this node claimed; evidence against the node is on the ledger",
  ALREADY_COMMITTED: "this session id was already committed with other ops",
  INVALID_SESSION: "L1 does not take these ops as a session",
  TIME_OUT_OF_BOUNDS: "an op's time is outside what L1 accepts",
  EXPIRED: "an op expired before L1 could apply it",
  UNAUTHENTICATED: "a signature or the L2 node is not registered on L1",
  PERMISSION_DENIED: "L1 refused a role",
};

// final reads a session's end as the node sends it
// ({status, l1: {height, tx_hash}, error: {code, message}}).
export function final(f) {
  if (!f) return null;
  return { status: f.status, height: f.l1 ? f.l1.height : 0, tx: f.l1 ? f.l1.tx_hash : "",
    code: f.error ? f.error.code : "", reason: f.error ? f.error.message : "" };
}

// explainFinal says in words how a session ended.
export function explainFinal(raw) {
  const f = final(raw);
  if (!f) return "";
  switch (f.status) {
    case "committed":
      return `committed at height ${f.height}`;
    case "aborted":
      return f.code === "EXPIRED" ? "aborted: " + f.reason : "aborted";
    default:
      return `rejected: ${verdicts[f.code] || f.code}${f.reason ? ` (${f.reason})` : ""}`;
  }
}

// explain says in words what an error answer means.
export function explain(status, body, headers) {
  const e = body && body.error ? body.error : {};
  const msg = e.message || "";
  if (status === 0) return "The L2 node did not answer: it may be down or restarting.";
  if (e.holder) {
    const id = e.holder.key.replace(/^[a-z]+\//, "");
    return `${id} is being handled by ${e.holder.actor} (session ${e.holder.session}, since ${when(e.holder.since)}).`;
  }
  switch (status) {
    case 401:
      if (msg === "bad signature") return "Your key does not match the one registered for this actor: sign in again with the right key.";
      if (/unknown|revoked/.test(msg)) return `This actor is not registered, or was revoked (${msg}).`;
      return `Not signed in correctly: ${msg}`;
    case 403:
      return `Your role may not do this: ${msg}.`;
    case 404:
      return msg ? msg.charAt(0).toUpperCase() + msg.slice(1) + "." : "Not found.";
    case 409:
      if (verdicts[e.code]) return `L1 rejected it: ${verdicts[e.code]}. ${msg}`;
      return msg ? msg.charAt(0).toUpperCase() + msg.slice(1) + "." : "Conflict.";
    case 413:
      return `Too large: ${msg}.`;
    case 429: {
      const n = Number(headers && headers.get("Retry-After")) || 1;
      if (e.code === "OVERLOADED") return `The ledger is behind; retrying in ${n} s.`;
      return `Too many requests (${e.code}): retrying in ${n} s.`;
    }
    case 503:
      return `The node is not able to take this now: ${msg}`;
  }
  return msg || `HTTP ${status}`;
}

// retrying runs f again while the node answers 429 (the ledger is behind,
// or a rate), after the Retry-After it gives, telling onWait each time.
export async function retrying(f, onWait, tries = 5) {
  for (let i = 0; ; i++) {
    try {
      return await f();
    } catch (e) {
      if (!(e instanceof HTTPError) || e.status !== 429 || i + 1 >= tries) throw e;
      if (onWait) onWait(e.message);
      await new Promise((r) => setTimeout(r, (e.retryAfter || 1) * 1000));
    }
  }
}
