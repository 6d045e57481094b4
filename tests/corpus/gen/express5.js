'use strict';
// Express 5. With CORPUS_LOGGER unset there is no error middleware: failures reach
// Express's default error handler (finalhandler), which prints err.stack on stderr, and
// innocent lines go to console.log/warn. With CORPUS_LOGGER=<name>, the app's error
// middleware logs through gen/loggers/<name>.js instead, the way an app wires its logger
// in: every failure is one `logger.failed(err, req)` call.
const express = require('express');
const { FAULTS, drive, fail } = require('./lib/traffic');

const defaults = {
  info: (text) => console.info(text),
  warn: (text) => console.warn(text),
  expect: { all: { route: null } },
};
const logger = process.env.CORPUS_LOGGER ? require(`./loggers/${process.env.CORPUS_LOGGER}`) : defaults;

const app = express();
app.use(express.text({ type: '*/*' }));
app.get('/health', (req, res) => res.send('ok'));
// @corpus-shift
for (const [key, f] of Object.entries(FAULTS)) {
  app[f.method.toLowerCase()](f.route.split(' ')[1], (req, res) => {
    res.json(fail(key, req.originalUrl, req.body));
  });
}
if (logger.failed) {
  app.use((err, req, res, next) => {
    logger.failed(err, req);
    res.status(500).json({ error: 'internal' });
  });
}

const server = app.listen(0, '127.0.0.1', async () => {
  await drive(server.address().port, (level, text) => logger[level](text), logger.expect || {});
  server.close(() => (logger.close ? logger.close() : undefined));
});
