// A plain node:http service compiled with tsc; a failed request is logged with
// console.error(`${method} ${url} failed:`, err). Run from dist/, with or without
// --enable-source-maps (then the frames name src/*.ts).
import * as http from 'node:http';
import { chargeCard, loadProfile, orderTotal } from './orders';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const traffic = require('../../lib/traffic');

// @corpus-shift
function handle(key: string, url: string): unknown {
  const parts = new URL(url, 'http://x');
  const segment = parts.pathname.split('/')[2];
  if (key === 'total') return orderTotal(undefined);
  if (key === 'charge') return chargeCard(segment, String(parts.searchParams.get('user')));
  return loadProfile(segment);
}

const server = http.createServer((req, res) => {
  const key = traffic.faultOf(req.method, req.url);
  try {
    res.end(key ? JSON.stringify(handle(key, req.url ?? '/')) : 'ok');
  } catch (err) {
    console.error(`${req.method} ${req.url} failed:`, err);
    res.statusCode = 500;
    res.end();
  }
});

const file = process.execArgv.includes('--enable-source-maps') ? 'ts/src/orders.ts' : 'ts/dist/orders.js';
const expect: Record<string, unknown> = {};
for (const [key, fn] of [['total', 'orderTotal'], ['charge', 'chargeCard'], ['profile', 'loadProfile']]) {
  expect[key] = { frame: { function: fn, file } };
}

server.listen(0, '127.0.0.1', async () => {
  const address = server.address() as { port: number };
  await traffic.drive(address.port, (level: 'info' | 'warn', text: string) => console[level](text), expect);
  server.close();
});
