/** Which Node-RED core node files `tributary run` leaves unloaded for a flow. */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { coreNodesDir, unusedCoreNodeFiles } from "../../runtime/core-nodes";
import { tempDir } from "../e2e/support";

describe("core nodes a headless run leaves out", () => {
  it("a flow of Tributary nodes needs none of the installed core nodes that register types", () => {
    const unused = unusedCoreNodeFiles(new Set(["tab", "tributary-db-source", "tributary-upsert"]));
    for (const file of [
      "10-mqtt.js",
      "20-inject.js",
      "21-httprequest.js",
      "70-XML.js",
      "10-function.js",
    ])
      assert.ok(unused.includes(file), `${file} is left out`);
    const withJunction = unusedCoreNodeFiles(new Set(["tributary-db-source", "junction"]));
    assert.ok(!withJunction.includes("05-junction.js"));
    assert.ok(unused.includes("05-junction.js"));
  });

  it("keeps every file that registers a type the flow uses, including shared config types", () => {
    const unused = unusedCoreNodeFiles(new Set(["inject", "debug", "function", "mqtt-broker"]));
    for (const file of ["20-inject.js", "21-debug.js", "10-function.js", "10-mqtt.js"])
      assert.ok(!unused.includes(file), `${file} is loaded`);
    assert.ok(unused.includes("70-XML.js"));
    assert.ok(fs.existsSync(path.join(coreNodesDir()!, "network", "10-mqtt.js")));
  });

  it("keeps a file whose type it cannot read", () => {
    const dir = tempDir("tributary-core-");
    fs.mkdirSync(path.join(dir, "common"));
    const write = (name: string, js: string, html: string) => {
      fs.writeFileSync(path.join(dir, "common", `${name}.js`), js);
      fs.writeFileSync(path.join(dir, "common", `${name}.html`), html);
    };
    write("10-plain", `RED.nodes.registerType("plain", Plain);`, "");
    write("20-variable", `const type = "var"; RED.nodes.registerType(type, Var);`, "");
    write("30-none", `module.exports = () => {};`, "");
    assert.deepEqual(unusedCoreNodeFiles(new Set(["other"]), dir), ["10-plain.js"]);
    assert.deepEqual(unusedCoreNodeFiles(new Set(["plain"]), dir), []);
  });
});
