'use strict';
// Fastify with its built-in logger on (pino, JSON lines on stdout): a failing handler is
// logged by Fastify's default error handler with the request and the serialized error.
const fastify = require('fastify');
const { FAULTS, drive, fail } = require('./lib/traffic');

const app = fastify({ logger: true });
app.addContentTypeParser('*', { parseAs: 'string' }, (req, body, done) => done(null, body));
app.get('/health', async () => 'ok');
// @corpus-shift
for (const [key, f] of Object.entries(FAULTS)) {
  app.route({
    method: f.method,
    url: f.route.split(' ')[1],
    handler: async (request) => fail(key, request.url, request.body),
  });
}

app.listen({ port: 0, host: '127.0.0.1' }).then(async () => {
  await drive(app.server.address().port, (level, text) => app.log[level](text));
  await app.close();
});
