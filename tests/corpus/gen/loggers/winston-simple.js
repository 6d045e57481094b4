'use strict';
// winston with format.errors({stack: true}) and format.simple(): `level: message {json rest}`,
// where the rest holds the stack and the request.
const winston = require('winston');

const log = winston.createLogger({
  format: winston.format.combine(winston.format.errors({ stack: true }), winston.format.simple()),
  transports: [new winston.transports.Console()],
});
module.exports = {
  info: (text) => log.info(text),
  warn: (text) => log.warn(text),
  failed: (err, req) => log.error(err, { method: req.method, url: req.originalUrl }),
};
