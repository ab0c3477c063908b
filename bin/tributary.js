#!/usr/bin/env -S node --max-semi-space-size=64
"use strict";
// The flag gives V8's young generation room for the batches in flight: they then die
// young instead of being promoted, and large syncs spend about 10% less time in the
// garbage collector (bench/RESULTS.md). `env -S` passes it on (coreutils 8.30+, macOS).
// The compiled CLI; `npm start` and `npm test` build it first.
const { main } = require("../dist/runtime/cli.js");
const { StartupError } = require("../dist/runtime/user-dir.js");

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== null) process.exit(code);
  },
  (err) => {
    console.error(err instanceof StartupError ? `tributary: ${err.message}` : err.stack);
    process.exit(1);
  },
);
