'use strict';
// bunyan's JSON lines on stdout; the error under `err` (bunyan's std serializer).
const bunyan = require('bunyan');

const log = bunyan.createLogger({ name: 'shop', serializers: bunyan.stdSerializers });
module.exports = {
  info: (text) => log.info(text),
  warn: (text) => log.warn(text),
  failed: (err, req) => log.error({ err, req: { method: req.method, url: req.originalUrl } }, 'request failed'),
};
