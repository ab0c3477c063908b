/**
 * Which of Node-RED's core node files a headless run can leave unloaded. A flow of
 * Tributary nodes needs none of them, and loading them all (MQTT, HTTP, HTML and XML
 * parsers, with their libraries) costs `tributary run` about 25 MB and start-up time.
 * Node-RED's `nodesExcludes` setting takes file names; the types each file registers
 * are read from the installed files, so the list follows the Node-RED version.
 */
import fs from "node:fs";
import path from "node:path";

const REGISTER = /registerType\(\s*(["'])([^"']+)\1/g;

/** The types a core node file registers, or null when some are not literal text. */
function registeredTypes(jsFile: string): Set<string> | null {
  const types = new Set<string>();
  let calls = 0;
  for (const file of [jsFile, jsFile.replace(/\.js$/, ".html")]) {
    let text: string;
    try {
      text = fs.readFileSync(file, "utf8");
    } catch {
      continue;
    }
    const literal = [...text.matchAll(REGISTER)];
    for (const match of literal) types.add(match[2]);
    if (file === jsFile) {
      calls = text.split("registerType(").length - 1;
      if (literal.length < calls) return null; // a type in a variable: cannot tell, keep the file
    }
  }
  return calls === 0 || types.size === 0 ? null : types;
}

/** Where the installed Node-RED keeps its core nodes, or null without node-red. */
export function coreNodesDir(): string | null {
  try {
    return path.join(path.dirname(require.resolve("@node-red/nodes")), "core");
  } catch {
    return null;
  }
}

/**
 * Core node files (e.g. "10-mqtt.js") none of whose types `used` contains. A file
 * whose types cannot be read is kept.
 */
export function unusedCoreNodeFiles(used: Set<string>, dir = coreNodesDir()): string[] {
  if (!dir) return [];
  const unused: string[] = [];
  for (const group of fs.readdirSync(dir, { withFileTypes: true })) {
    if (!group.isDirectory()) continue;
    for (const name of fs.readdirSync(path.join(dir, group.name))) {
      if (!name.endsWith(".js")) continue;
      const types = registeredTypes(path.join(dir, group.name, name));
      if (types && ![...types].some((t) => used.has(t))) unused.push(name);
    }
  }
  return unused;
}
