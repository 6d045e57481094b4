'use strict';
// The requests a corpus service receives and what each failing one is expected to log.
const http = require('node:http');
const shop = require('./shop');
const { steps, manifest } = require('./plan');

// Per fault: the HTTP request that triggers it, the shop function that throws, and what the
// agent must report. `route` is the template the logged route must match (`:x` = one segment).
const FAULTS = {
  total: {
    method: 'GET',
    path: (id) => `/orders/${id.order}/total`,
    route: 'GET /orders/:order/total',
    class: 'TypeError',
    message: "Cannot read properties of undefined (reading 'lines')",
    function: 'orderTotal',
    run: () => shop.orderTotal(undefined),
  },
  charge: {
    method: 'POST',
    path: (id) => `/orders/${id.order}/charge?user=${id.user}`,
    route: 'POST /orders/:order/charge',
    class: 'PaymentError',
    message: 'card declined for order',
    function: 'chargeCard',
    run: (id) => shop.chargeCard(id.order, id.user),
  },
  reserve: {
    method: 'POST',
    path: (id) => `/stock/${id.sku}/reserve?qty=${id.quantity}`,
    route: 'POST /stock/:sku/reserve',
    class: 'RangeError',
    message: 'cannot reserve',
    function: 'reserveStock',
    run: (id) => shop.reserveStock(id.sku, id.quantity),
  },
  cart: {
    method: 'POST',
    path: () => '/cart',
    route: 'POST /cart',
    class: 'SyntaxError',
    message: 'is not valid JSON',
    function: 'parseCart',
    run: (id) => shop.parseCart(id.cart),
  },
  profile: {
    method: 'GET',
    path: (id) => `/users/${id.uuid}/profile`,
    route: 'GET /users/:uuid/profile',
    class: 'Error',
    message: 'has no tenant',
    function: 'loadProfile',
    run: (id) => shop.loadProfile(id.uuid),
  },
};

/** The fault a request path belongs to, with the ids it carries (for the handlers). */
function idsOf(url) {
  const u = new URL(url, 'http://x');
  const parts = u.pathname.split('/');
  return {
    order: parts[2],
    sku: parts[2],
    uuid: parts[2],
    user: u.searchParams.get('user'),
    quantity: u.searchParams.get('qty'),
  };
}

function send(port, method, path, body) {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, method, path }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', () => resolve(0));
    if (body) req.setHeader('content-type', 'text/plain');
    req.end(body || undefined);
  });
}

/**
 * Send the plan's requests one at a time; `innocent(level, text)` logs the innocent lines
 * through the service's own logger. `expect` overrides fields of the manifest per fault
 * (for example `route: null` when the format never shows the route).
 */
async function drive(port, innocent, expect = {}) {
  for (const step of steps()) {
    if (step.kind === 'innocent') innocent(step.level, step.text);
    else if (step.kind === 'ok') await send(port, 'GET', `/health?user=${step.id.user}`);
    else {
      const fault = FAULTS[step.key];
      await send(port, fault.method, fault.path(step.id), step.key === 'cart' ? step.id.cart : '');
    }
  }
  writeManifest(expect);
}

function writeManifest(expect = {}) {
  const faults = {};
  for (const [key, f] of Object.entries(FAULTS)) {
    faults[key] = {
      class: f.class,
      message: f.message,
      stack: true,
      frame: { function: f.function, file: 'lib/shop.js' },
      route: f.route,
      ...(expect.all || {}),
      ...(expect[key] || {}),
    };
  }
  manifest(faults);
}

/** Run the fault a request stands for (handlers call this; it throws). */
function fail(key, url, body) {
  const id = idsOf(url);
  if (key === 'cart') id.cart = body;
  return FAULTS[key].run(id);
}

/** Which fault a request is, or null for /health. */
function faultOf(method, url) {
  const p = new URL(url, 'http://x').pathname;
  for (const [key, f] of Object.entries(FAULTS)) {
    const re = new RegExp(`^${f.route.split(' ')[1].replace(/:[a-z]+/g, '[^/]+')}$`);
    if (f.method === method && re.test(p)) return key;
  }
  return null;
}

module.exports = { FAULTS, drive, fail, faultOf, writeManifest, steps };
