'use strict';
// A worker with process-level handlers that print what escaped and keep running:
// console.error('uncaughtException:', err) and console.error('unhandledRejection:', reason).
// Faults thrown in a timer are uncaught exceptions; faults in a promise chain that nobody
// awaits are unhandled rejections.
const { FAULTS, steps, writeManifest } = require('./lib/traffic');

process.on('uncaughtException', (err) => console.error('uncaughtException:', err));
process.on('unhandledRejection', (reason) => console.error('unhandledRejection:', reason));

const REJECTED = new Set(['charge', 'profile']);

// @corpus-shift
function runJob(step) {
  const fault = FAULTS[step.key];
  if (REJECTED.has(step.key)) {
    Promise.resolve(step.id).then((id) => fault.run(id));
  } else {
    setTimeout(() => fault.run(step.id), 0);
  }
}

async function main() {
  for (const step of steps()) {
    if (step.kind === 'innocent') console[step.level](step.text);
    else if (step.kind === 'ok') console.log(`job for user ${step.id.user} done`);
    else runJob(step);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  writeManifest({ all: { route: null } });
}

main();
