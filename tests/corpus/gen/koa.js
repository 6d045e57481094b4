'use strict';
// Koa with no error middleware of its own: failures reach app.onerror, Koa's default
// handler, which prints the whole stack indented by two spaces on stderr.
const Koa = require('koa');
const { drive, fail, faultOf } = require('./lib/traffic');

const app = new Koa();

function readBody(req) {
  return new Promise((resolve) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => resolve(body));
  });
}

// @corpus-shift
app.use(async (ctx) => {
  const key = faultOf(ctx.method, ctx.url);
  if (!key) {
    ctx.body = 'ok';
    return;
  }
  const body = await readBody(ctx.req);
  ctx.body = fail(key, ctx.url, body);
});

const server = app.listen(0, '127.0.0.1', async () => {
  await drive(server.address().port, (level, text) => console[level](text), { all: { route: null } });
  server.close();
});
