// 查验凭证: check a ledger receipt in this browser, with WebCrypto only; the server is never asked for a verdict.
//
// The steps follow the public specifications, as tools/verify_receipt.py does:
//   content in canonical JSON → leaf hash SHA-256(0x00 ‖ content) (RFC 9162 §2.1.1)
//   → the inclusion proof's path to a root (RFC 9162 §2.1.3.2; inner nodes SHA-256(0x01 ‖ left ‖ right))
//   → that root equals the checkpoint's (C2SP tlog-checkpoint)
//   → the checkpoint's Ed25519 signature verifies with the verifier key (C2SP signed-note).
(function () {
  "use strict";

  const T = JSON.parse(document.getElementById("verify-texts").textContent);
  const STEPS = ["receipt", "content", "leaf", "path", "root", "signature"];
  const KEY_FORM = /^[^+\s]+\+[0-9a-f]{8}\+[A-Za-z0-9+/]+=*$/;
  const HEX64 = /^[0-9a-f]{64}$/;
  const EM_DASH = "\u2014 ";
  const utf8 = new TextEncoder();

  class Refused extends Error {}

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
  }

  // --- bytes and hashes ------------------------------------------------------------------------

  function hex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function fromHex(text) {
    return Uint8Array.from(text.match(/../g), (pair) => parseInt(pair, 16));
  }

  function fromBase64(text) {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) throw new Refused("base64");
    return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  }

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const part of parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }

  function equal(a, b) {
    return a.length === b.length && a.every((value, i) => value === b[i]);
  }

  async function sha256(bytes) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  }

  const leafHash = (content) => sha256(concat(Uint8Array.of(0), utf8.encode(content)));
  const nodeHash = (left, right) => sha256(concat(Uint8Array.of(1), left, right));

  // --- the receipt and its content -------------------------------------------------------------

  function readReceipt(text) {
    let receipt;
    try {
      receipt = JSON.parse(text);
    } catch (error) {
      throw new Refused(T.not_json);
    }
    const ok = receipt && typeof receipt === "object" && !Array.isArray(receipt)
      && Number.isSafeInteger(receipt.leaf_index) && receipt.leaf_index >= 0
      && typeof receipt.content === "string" && typeof receipt.checkpoint === "string"
      && Array.isArray(receipt.proof) && receipt.proof.every((p) => typeof p === "string" && HEX64.test(p));
    if (!ok) throw new Refused(T.fields);
    return receipt;
  }

  // Keys in code-point order, as Python's sort_keys, so the canonical form is the same as the server's.
  function byCodePoint(a, b) {
    const x = Array.from(a, (c) => c.codePointAt(0));
    const y = Array.from(b, (c) => c.codePointAt(0));
    for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
    return x.length - y.length;
  }

  function canonical(value) {
    if (Array.isArray(value)) return "[" + value.map(canonical).join(",") + "]";
    if (value && typeof value === "object") {
      return "{" + Object.keys(value).sort(byCodePoint)
        .map((key) => JSON.stringify(key) + ":" + canonical(value[key])).join(",") + "}";
    }
    return JSON.stringify(value);
  }

  // The content parsed, refused unless it is canonical (repeated keys or big numbers change its re-serialisation).
  function readContent(content) {
    let document;
    try {
      document = JSON.parse(content);
    } catch (error) {
      throw new Refused(T.not_canonical);
    }
    if (!document || typeof document !== "object" || Array.isArray(document) || canonical(document) !== content) {
      throw new Refused(T.not_canonical);
    }
    return document;
  }

  function yuan(fen) {
    if (!Number.isSafeInteger(fen)) return String(fen);
    const whole = Math.floor(Math.abs(fen) / 100).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    return (fen < 0 ? "-" : "") + "¥" + whole + "." + String(Math.abs(fen) % 100).padStart(2, "0");
  }

  function when(text) {
    const instant = new Date(text);
    if (Number.isNaN(instant.getTime())) return String(text);
    const beijing = new Date(instant.getTime() + 8 * 3600 * 1000).toISOString().slice(0, 19).replace("T", " ");
    return text + " (" + fill(T.beijing_time, { time: beijing }) + ")";
  }

  function named(table, key) {
    return key in table ? `${table[key]} (${key})` : String(key);
  }

  // What the content says, as [label, value] rows (values are shown as text, never as HTML).
  function describe(doc) {
    const rows = [];
    if (doc.type === "journal_entry") {
      rows.push([T.record, T.journal_entry], [T.kind, named(T.kinds, doc.kind)]);
      if (Array.isArray(doc.postings)) {
        const debits = doc.postings.reduce((sum, line) => sum + (line[1] > 0 ? line[1] : 0), 0);
        rows.push([T.amount, yuan(debits)]);
        for (const [account, fen] of doc.postings) {
          rows.push([T.lines, `${fen > 0 ? T.debit : T.credit} ${account} ${yuan(Math.abs(fen))}`]);
        }
      } else {
        rows.push([T.lines, fill(T.lines_committed, { count: doc.line_count, root: doc.lines_root })]);
      }
      rows.push([T.memo, doc.memo], [T.reference, doc.reference ?? "—"], [T.time, when(doc.posted_at)]);
      rows.push([T.entry, doc.uid]);
    } else if (doc.type === "coverage") {
      rows.push([T.record, T.coverage], [T.kind, named(T.kinds, doc.kind)], [T.layer, named(T.layers, doc.layer)]);
      rows.push([T.program, doc.program], [T.amount, yuan(doc.amount)], [T.episode, doc.episode_id]);
      rows.push([T.time, when(doc.recorded_at)]);
    } else if (doc.type === "line") {
      rows.push([T.record, T.line], [T.entry, doc.entry], [T.line_no, doc.line], [T.account, doc.account]);
      rows.push([T.amount, yuan(doc.amount)]);
    } else {
      for (const [key, value] of Object.entries(doc)) rows.push([key, JSON.stringify(value)]);
    }
    return rows;
  }

  // --- the Merkle path (RFC 9162 §2.1.3.2) -----------------------------------------------------

  async function rootFromProof(index, size, leaf, proof) {
    if (index >= size) throw new Refused(fill(T.index_outside, { index, size }));
    // Tree sizes stay far below 2^53, so plain numbers with Math.floor stand in for the RFC's shifts.
    let fn = index, sn = size - 1, r = leaf;
    const trace = [];
    for (const p of proof) {
      if (sn === 0) throw new Refused(T.proof_long);
      if (fn % 2 === 1 || fn === sn) {
        r = await nodeHash(p, r);
        trace.push([T.sibling_left, hex(p), hex(r)]);
        if (fn % 2 === 0) {
          while (fn !== 0 && fn % 2 === 0) {
            fn = Math.floor(fn / 2);
            sn = Math.floor(sn / 2);
          }
        }
      } else {
        r = await nodeHash(r, p);
        trace.push([T.sibling_right, hex(p), hex(r)]);
      }
      fn = Math.floor(fn / 2);
      sn = Math.floor(sn / 2);
    }
    if (sn !== 0) throw new Refused(T.proof_short);
    return { root: r, trace };
  }

  // --- the signed checkpoint (C2SP) ------------------------------------------------------------

  function readNote(note) {
    if (!note.endsWith("\n") || !note.includes("\n\n")) throw new Refused(T.bad_note);
    const cut = note.lastIndexOf("\n\n");
    const text = note.slice(0, cut + 1);
    const block = note.slice(cut + 2);
    const signatures = [];
    for (const line of block ? block.slice(0, -1).split("\n") : []) {
      const rest = line.startsWith(EM_DASH) ? line.slice(EM_DASH.length) : "";
      const space = rest.lastIndexOf(" ");
      if (space <= 0) throw new Refused(T.bad_note);
      let blob;
      try {
        blob = fromBase64(rest.slice(space + 1));
      } catch (error) {
        throw new Refused(T.bad_note);
      }
      if (blob.length < 5) throw new Refused(T.bad_note);
      signatures.push({ name: rest.slice(0, space), blob });
    }
    const lines = text.split("\n").slice(0, -1);
    if (lines.length < 3 || !lines[0] || !/^(0|[1-9][0-9]*)$/.test(lines[1])) throw new Refused(T.bad_note);
    let root;
    try {
      root = fromBase64(lines[2]);
    } catch (error) {
      throw new Refused(T.bad_note);
    }
    if (root.length !== 32) throw new Refused(T.bad_note);
    return { text, signatures, origin: lines[0], size: Number(lines[1]), root };
  }

  async function readKey(text) {
    if (!KEY_FORM.test(text)) throw new Refused(T.bad_key);
    const [name, keyId] = text.split("+", 2);
    let raw;
    try {
      raw = fromBase64(text.slice(name.length + keyId.length + 2));
    } catch (error) {
      throw new Refused(T.bad_key);
    }
    if (raw.length !== 33 || raw[0] !== 1) throw new Refused(T.bad_key);
    const id = (await sha256(concat(utf8.encode(name + "\n"), raw))).slice(0, 4);
    if (hex(id) !== keyId) throw new Refused(T.bad_key);
    return { name, id, publicKey: raw.slice(1) };
  }

  async function checkSignature(note, keyText) {
    const key = await readKey(keyText);
    const signature = note.signatures.find((s) => s.name === key.name && equal(s.blob.slice(0, 4), key.id));
    if (!signature) throw new Refused(T.no_signature);
    let publicKey;
    try {
      publicKey = await crypto.subtle.importKey("raw", key.publicKey, { name: "Ed25519" }, false, ["verify"]);
    } catch (error) {
      throw new Refused(T.no_webcrypto);
    }
    const text = utf8.encode(note.text);
    const ok = await crypto.subtle.verify({ name: "Ed25519" }, publicKey, signature.blob.slice(4), text);
    if (!ok) throw new Refused(T.bad_signature);
    return fill(T.signed_by, { name: key.name, id: hex(key.id) });
  }

  // --- the whole check -------------------------------------------------------------------------

  // Every step that can run, runs; each is {status: "ok" | "fail" | "skip", detail, trace?}.
  async function check(receiptText, keyText) {
    const steps = {};
    const facts = [];
    const run = async (name, needs, body) => {
      if (needs.some((other) => steps[other].status !== "ok")) {
        steps[name] = { status: "skip", detail: T.not_checked };
        return undefined;
      }
      try {
        const { detail, trace, value } = await body();
        steps[name] = { status: "ok", detail, trace };
        return value;
      } catch (error) {
        // A receipt shaped unlike any genuine one (say, a line that is not a pair) fails its step too.
        steps[name] = { status: "fail", detail: error instanceof Refused ? error.message : T.fields };
        return undefined;
      }
    };
    if (!window.crypto || !crypto.subtle) {
      STEPS.forEach((name) => { steps[name] = { status: "fail", detail: T.no_webcrypto }; });
      return { steps, facts };
    }
    const receipt = await run("receipt", [], async () => ({ detail: "", value: readReceipt(receiptText) }));
    await run("content", ["receipt"], async () => {
      facts.push(...describe(readContent(receipt.content)));
      return { detail: T.canonical };
    });
    const leaf = await run("leaf", ["receipt"], async () => {
      const value = await leafHash(receipt.content);
      return { detail: hex(value), value };
    });
    let note;
    try {
      note = receipt && readNote(receipt.checkpoint);
      if (note) facts.push([T.leaf_index, receipt.leaf_index], [T.tree_size, note.size], [T.log, note.origin]);
    } catch (error) {
      if (!(error instanceof Refused)) throw error;
      note = error;
    }
    const checkpoint = async () => {
      if (note instanceof Refused) throw note;
      return note;
    };
    const path = await run("path", ["leaf"], async () => {
      const signed = await checkpoint();
      const value = await rootFromProof(receipt.leaf_index, signed.size, leaf, receipt.proof.map(fromHex));
      return { detail: fill(T.path_summary, { n: receipt.proof.length, root: hex(value.root) }),
               trace: value.trace, value };
    });
    await run("root", ["path"], async () => {
      const detail = fill(T.roots, { computed: hex(path.root), signed: hex(note.root) });
      if (!equal(path.root, note.root)) throw new Refused(T.root_differs + " " + detail);
      return { detail };
    });
    await run("signature", ["receipt"], async () => ({ detail: await checkSignature(await checkpoint(), keyText) }));
    return { steps, facts };
  }

  // --- the page --------------------------------------------------------------------------------

  const $ = (id) => document.getElementById(id);

  function element(tag, text, attributes) {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = String(text);
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
    return node;
  }

  function show(result) {
    const failed = STEPS.find((name) => result.steps[name] && result.steps[name].status === "fail");
    const verdict = $("verdict");
    verdict.replaceChildren();
    verdict.className = "verdict " + (failed ? "invalid" : "valid");
    verdict.dataset.verdict = failed ? "invalid" : "valid";
    verdict.append(element("strong", failed ? T.invalid : T.valid), " ");
    verdict.append(failed
      ? fill(T.invalid_detail, { step: T["step_" + failed], reason: result.steps[failed].detail })
      : T.valid_detail);

    const facts = $("facts");
    facts.replaceChildren();
    for (const [label, value] of result.facts) {
      const row = element("div");
      row.append(element("dt", label), element("dd", value));
      facts.append(row);
    }

    const list = $("steps");
    list.replaceChildren();
    for (const name of STEPS) {
      const step = result.steps[name];
      if (!step) continue;
      const item = element("li", undefined, { "data-step": name, "data-status": step.status });
      const mark = { ok: "✓", fail: "✗", skip: "–" }[step.status];
      item.append(element("span", mark, { class: "mark", "aria-hidden": "true" }));
      item.append(element("strong", T["step_" + name]));
      if (step.detail) item.append(element("div", step.detail, { class: "detail mono" }));
      if (step.trace && step.trace.length) {
        const trace = element("ol", undefined, { class: "trace mono" });
        for (const [side, sibling, parent] of step.trace) {
          trace.append(element("li", `${side} ${sibling.slice(0, 16)}… → ${parent.slice(0, 16)}…`));
        }
        item.append(trace);
      }
      list.append(item);
    }
    $("outcome").hidden = false;
  }

  async function checkShown() {
    $("working").hidden = false;
    try {
      show(await check($("receipt").value.trim(), $("verifier-key").value.trim()));
    } finally {
      $("working").hidden = true;
    }
  }

  function problem(message) {
    show({ steps: { receipt: { status: "fail", detail: message } }, facts: [] });
  }

  async function fetchAndCheck() {
    const index = $("leaf-index").value.trim();
    if (!/^[0-9]+$/.test(index)) {
      problem(T.no_leaf);
      return;
    }
    let response;
    try {
      response = await fetch(`/api/ledger/receipts/${index}`, { headers: { Accept: "application/json" } });
    } catch (error) {
      problem(fill(T.fetch_failed, { detail: error.message }));
      return;
    }
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      problem(fill(T.fetch_failed, { detail: body.detail || response.status }));
      return;
    }
    $("receipt").value = JSON.stringify(body, null, 2);
    await checkShown();
  }

  async function loadKey() {
    try {
      const response = await fetch("/api/ledger/public-key", { headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(String(response.status));
      const key = await response.json();
      if (!$("verifier-key").value) $("verifier-key").value = key.verifier_key;
    } catch (error) {
      $("verifier-key").placeholder = T.key_failed;
    }
  }

  document.addEventListener("DOMContentLoaded", async () => {
    $("verify-form").addEventListener("submit", (event) => {
      event.preventDefault();
      checkShown();
    });
    $("fetch").addEventListener("click", fetchAndCheck);
    $("leaf-index").addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        fetchAndCheck();
      }
    });
    await loadKey();
    document.body.dataset.ready = "true";
    const leaf = new URLSearchParams(location.search).get("leaf");
    if (leaf && /^[0-9]+$/.test(leaf)) {
      $("leaf-index").value = leaf;
      await fetchAndCheck();
    }
  });
})();
