'use strict';
// What a corpus program does, in a fixed order: which requests fail how often, with which
// ids, and the innocent lines between them. Read from the CORPUS_PLAN environment variable
// (JSON: {"seed": n, "counts": {"fault key": occurrences}}), written by regenerate.py.
const fs = require('node:fs');

function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// CORPUS_CART_ITEMS makes every cart that long, for logs whose lines must outgrow the
// 16 KiB that container runtimes cut lines at.
function cartItems(random) {
  const n = Number(process.env.CORPUS_CART_ITEMS || 1);
  return Array.from({ length: n }, () => Math.floor(random() * 100)).join(',');
}

function ids(random) {
  const hex = (n) => Array.from({ length: n }, () => Math.floor(random() * 16).toString(16)).join('');
  return {
    user: 1000 + Math.floor(random() * 90000),
    order: `ORD-${100000 + Math.floor(random() * 900000)}`,
    sku: `SKU${1000 + Math.floor(random() * 9000)}`,
    quantity: 2 + Math.floor(random() * 40),
    uuid: `${hex(8)}-${hex(4)}-4${hex(3)}-a${hex(3)}-${hex(12)}`,
    cart: `{"items":[${cartItems(random)}],"coupon":'X${hex(4)}'}`,
  };
}

const INNOCENT = [
  ['info', (id) => `retrying after error on attempt 2 for order ${id.order}`],
  ['warn', (id) => `0 errors in the last batch of ${id.quantity} jobs`],
  ['info', (id) => `error budget ok: ${id.quantity} requests, 0 errors`],
  ['warn', (id) => `slow request for user ${id.user}, no error`],
];

/** The steps: {kind: 'fault', key, id} or {kind: 'innocent', level, text} or {kind: 'ok'}. */
function steps() {
  const plan = JSON.parse(process.env.CORPUS_PLAN || '{}');
  const random = prng(plan.seed || 1);
  const out = [];
  for (const [key, count] of Object.entries(plan.counts || {})) {
    for (let i = 0; i < count; i++) out.push({ kind: 'fault', key });
  }
  const innocent = Math.max(4, Math.floor(out.length / 4));
  for (let i = 0; i < innocent; i++) {
    const [level, text] = INNOCENT[i % INNOCENT.length];
    out.push({ kind: 'innocent', level, text });
  }
  for (let i = 0; i < innocent; i++) out.push({ kind: 'ok' });
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  for (const step of out) {
    step.id = ids(random);
    if (step.kind === 'innocent') step.text = step.text(step.id);
  }
  return out;
}

/** Write the manifest (the expected groups) where regenerate.py asked for it. */
function manifest(faults) {
  const plan = JSON.parse(process.env.CORPUS_PLAN || '{}');
  const groups = Object.entries(plan.counts || {}).map(([key, count]) => ({
    key,
    count,
    ...faults[key],
  }));
  if (process.env.CORPUS_MANIFEST) {
    fs.writeFileSync(process.env.CORPUS_MANIFEST, JSON.stringify({ groups }, null, 2) + '\n');
  }
}

module.exports = { steps, manifest };
