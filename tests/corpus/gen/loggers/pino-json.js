'use strict';
// pino's default JSON lines on stdout; the error under `err` (pino's std serializer).
const pino = require('pino');

const log = pino();
module.exports = {
  info: (text) => log.info(text),
  warn: (text) => log.warn(text),
  failed: (err, req) => log.error({ err, req: { method: req.method, url: req.originalUrl } }, 'request failed'),
};
