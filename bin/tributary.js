#!/usr/bin/env node
"use strict";
// The compiled CLI; `npm start` and `npm test` build it first.
const { main } = require("../dist/runtime/cli.js");
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
// (node-flags.ts).
const running = Promise.resolve().then(() => {
  const missing =
    args[0] === "run"
      ? missingNodeFlags(
          process.execArgv,
          process.env.NODE_OPTIONS,
          MEMORY_FLAGS[memoryMode(process.env)],
        )
      : [];
  return missing.length ? runWithFlags(missing, process.argv[1], args) : main(args);
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
