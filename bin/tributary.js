#!/usr/bin/env node
"use strict";
// The compiled CLI; `npm start` and `npm test` build it first.
const { StartupError } = require("../dist/runtime/user-dir.js");
const {
  dieWithParent,
  memoryMode,
  MEMORY_FLAGS,
  missingNodeFlags,
  runWithFlags,
} = require("../dist/runtime/node-flags.js");

const args = process.argv.slice(2);
dieWithParent();
// `tributary run` is the batch path: it runs with the Node.js flags of its memory mode
// (node-flags.ts). The CLI itself is loaded only in the process that runs it: the first
// one stays small while it waits.
const running = Promise.resolve().then(() => {
  const missing =
    args[0] === "run"
      ? missingNodeFlags(
          process.execArgv,
          process.env.NODE_OPTIONS,
          MEMORY_FLAGS[memoryMode(process.env)],
        )
      : [];
  if (missing.length) return runWithFlags(missing, process.argv[1], args);
  return require("../dist/runtime/cli.js").main(args);
});

running.then(
  (code) => {
    if (code !== null) process.exit(code);
  },
  (err) => {
    console.error(err instanceof StartupError ? `tributary: ${err.message}` : err.stack);
    process.exit(1);
  },
);
