#!/usr/bin/env node
"use strict";
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
