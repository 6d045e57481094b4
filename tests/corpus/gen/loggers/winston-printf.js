'use strict';
// winston's everyday text format: `${timestamp} [${label}] ${level}: ${message}`, followed
// by the stack on the next lines when there is one.
const winston = require('winston');

const { combine, label, timestamp, errors, printf } = winston.format;
const log = winston.createLogger({
  format: combine(
    label({ label: 'shop' }),
    timestamp(),
    errors({ stack: true }),
    printf(({ timestamp, label, level, message, stack }) =>
      `${timestamp} [${label}] ${level}: ${message}${stack ? `\n${stack}` : ''}`,
    ),
  ),
  transports: [new winston.transports.Console()],
});
module.exports = {
  info: (text) => log.info(text),
  warn: (text) => log.warn(text),
  failed: (err) => log.error(err),
  expect: { all: { route: null } },
};
