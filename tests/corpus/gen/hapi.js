'use strict';
// hapi with its default debug settings: a handler that throws is answered with a 500 and
// logged on stderr as `Debug: internal, implementation, error` followed by the stack, when
// Boom counts it as a developer error (TypeError, RangeError, SyntaxError, ...).
const Hapi = require('@hapi/hapi');
const { FAULTS, drive, fail } = require('./lib/traffic');

async function main() {
  const server = Hapi.server({ port: 0, host: '127.0.0.1' });
  server.route({ method: 'GET', path: '/health', handler: () => 'ok' });
  // @corpus-shift
  for (const [key, f] of Object.entries(FAULTS)) {
    server.route({
      method: f.method,
      path: f.route.split(' ')[1].replace(/:([a-z]+)/g, '{$1}'),
      options: f.method === 'GET' ? {} : { payload: { parse: false } },
      handler: (request) => fail(key, request.url.pathname + request.url.search, String(request.payload)),
    });
  }
  await server.start();
  await drive(server.info.port, (level, text) => console[level](text), { all: { route: null } });
  await server.stop();
}

main();
