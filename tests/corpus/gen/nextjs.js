'use strict';
// Next.js (app router), built with `next build --webpack` and served in production mode by
// a custom server, run with --enable-source-maps. Next logs what a route handler throws as
// ` ⨯ TypeError: ...` with its stack, and what a server component throws the same way with
// the `{ digest: '...' }` block it gives the error. Innocent lines go to console.info/warn.
const http = require('node:http');
const path = require('node:path');
const next = require('next');
const { drive } = require('./lib/traffic');

const app = next({ dev: false, dir: path.join(__dirname, 'nextjs') });
app.prepare().then(() => {
  const handle = app.getRequestHandler();
  const server = http.createServer((req, res) => handle(req, res));
  server.listen(0, '127.0.0.1', async () => {
    const log = { info: (text) => console.info(text), warn: (text) => console.warn(text) };
    // Next prints no route with the error.
    await drive(server.address().port, (level, text) => log[level](text), { all: { route: null } });
    server.close();
    process.exit(0);
  });
});
