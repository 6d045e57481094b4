'use strict';
// log4js's basic layout on stdout: `[time] [LEVEL] category - ` then the logged values,
// an Error with its stack.
const log4js = require('log4js');

log4js.configure({
  appenders: { out: { type: 'stdout', layout: { type: 'basic' } } },
  categories: { default: { appenders: ['out'], level: 'info' } },
});
const log = log4js.getLogger('shop');
module.exports = {
  info: (text) => log.info(text),
  warn: (text) => log.warn(text),
  failed: (err, req) => log.error(`${req.method} ${req.originalUrl} failed:`, err),
  close: () => log4js.shutdown(),
};
