'use strict';
// pino through the real pino-pretty transform (in-process stream), as in development setups
// and many small deployments: `[time] LEVEL (pid): msg` with the error object indented below.
const pino = require('pino');
const pretty = require('pino-pretty');

const log = pino(pretty({ colorize: false, sync: true }));
module.exports = {
  info: (text) => log.info(text),
  warn: (text) => log.warn(text),
  failed: (err, req) => log.error({ err, req: { method: req.method, url: req.originalUrl } }, err.message),
};
