'use strict';
// A service with no handlers of its own, restarted by its supervisor after every crash:
// each run logs a little, then dies of one fault with node's own report (the source
// excerpt and caret for an uncaught exception, the rethrown reason for an unhandled
// rejection, then `Node.js vXX`). CORPUS_RUN picks which fault of the plan this run dies of.
const { FAULTS, steps, writeManifest } = require('./lib/traffic');

const REJECTED = new Set(['charge', 'profile']);
const plan = steps();
const faults = plan.filter((s) => s.kind === 'fault');
const run = Number(process.env.CORPUS_RUN || 0);
const step = faults[run];
const before = plan.slice(0, plan.indexOf(step)).filter((s) => s.kind === 'innocent');

writeManifest({ all: { route: null } });
console.log(`worker started, run ${run}`);
for (const s of before.slice(-2)) console[s.level](s.text);

// @corpus-shift
function crash() {
  const fault = FAULTS[step.key];
  if (REJECTED.has(step.key)) {
    Promise.resolve(step.id).then((id) => fault.run(id));
  } else {
    setTimeout(() => fault.run(step.id), 0);
  }
}

crash();
