'use strict';
// pino's default JSON lines on stdout; the error under `err` (pino's std serializer) and
// the request body, when there is one, under `body`.
const pino = require('pino');

const log = pino();
module.exports = {
  info: (text) => log.info(text),
  warn: (text) => log.warn(text),
  failed: (err, req) => {
    const body = typeof req.body === 'string' && req.body ? { body: req.body } : {};
    log.error({ err, req: { method: req.method, url: req.originalUrl }, ...body }, 'request failed');
  },
};
