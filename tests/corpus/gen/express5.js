'use strict';
// Express 5 with no error middleware of its own: failures reach Express's default error
// handler (finalhandler), which prints err.stack to stderr. Innocent lines: console.log/warn.
const express = require('express');
const { FAULTS, drive, fail } = require('./lib/traffic');

const app = express();
app.use(express.text({ type: '*/*' }));
app.get('/health', (req, res) => res.send('ok'));
// @corpus-shift
for (const [key, f] of Object.entries(FAULTS)) {
  app[f.method.toLowerCase()](f.route.split(' ')[1], (req, res) => {
    res.json(fail(key, req.originalUrl, req.body));
  });
}

const server = app.listen(0, '127.0.0.1', async () => {
  await drive(server.address().port, (level, text) => console[level](text), { all: { route: null } });
  server.close();
});
