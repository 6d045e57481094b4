'use strict';
// winston with format.errors({stack: true}) and format.json(): one JSON object per line.
const winston = require('winston');

const log = winston.createLogger({
  format: winston.format.combine(winston.format.timestamp(), winston.format.errors({ stack: true }), winston.format.json()),
  transports: [new winston.transports.Console()],
});
module.exports = {
  info: (text) => log.info(text),
  warn: (text) => log.warn(text),
  failed: (err, req) => log.error(err, { method: req.method, url: req.originalUrl }),
};
