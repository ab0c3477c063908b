#!/usr/bin/env node
// Compiles TypeScript to dist/ and places what Node-RED reads beside the compiled
// nodes: the editor .html next to each node's .js (the loader derives one from the
// other), locales/, and example flows under examples/ (the only folder Node-RED
// offers in Import > Examples).
"use strict";
const { execFileSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");

const root = path.resolve(__dirname, "..");
const dist = path.join(root, "dist");

function copyTree(from, to, filter) {
  if (!fs.existsSync(from)) return;
  for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
    const src = path.join(from, entry.name);
    const dst = path.join(to, entry.name);
    if (entry.isDirectory()) {
      copyTree(src, dst, filter);
    } else if (filter(entry.name)) {
      fs.mkdirSync(to, { recursive: true });
      fs.copyFileSync(src, dst);
    }
  }
}

const tsc = require.resolve("typescript/bin/tsc", { paths: [root] });
try {
  execFileSync(process.execPath, [tsc, "-p", path.join(root, "tsconfig.json")], {
    stdio: "inherit",
    cwd: root,
  });
} catch {
  console.error("build failed: TypeScript reported the errors above");
  process.exit(1);
}

const editorFiles = (name) => name.endsWith(".html") || name.endsWith(".json");
copyTree(path.join(root, "nodes"), path.join(dist, "nodes"), editorFiles);
copyTree(path.join(root, "plugins"), path.join(dist, "plugins"), editorFiles);
copyTree(path.join(root, "icons"), path.join(dist, "nodes", "icons"), (n) => n.endsWith(".svg"));
for (const dir of fs.readdirSync(path.join(dist, "nodes"), { withFileTypes: true })) {
  if (!dir.isDirectory() || dir.name === "lib" || dir.name === "icons") continue;
  copyTree(path.join(root, "icons"), path.join(dist, "nodes", dir.name, "icons"), (n) =>
    n.endsWith(".svg"),
  );
}
fs.rmSync(path.join(root, "examples"), { recursive: true, force: true });
copyTree(path.join(root, "flows"), path.join(root, "examples"), (n) => n.endsWith(".json"));
