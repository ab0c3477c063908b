/** The Node.js flags `tributary run` gives itself (runtime/node-flags.ts). */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { missingNodeFlags, NODE_FLAGS, runWithFlags } from "../../runtime/node-flags";

const bin = path.resolve(__dirname, "..", "..", "..", "bin", "tributary.js");

describe("Node.js flags of the CLI", () => {
  it("are missing until the command line or NODE_OPTIONS sets them, with any value", () => {
    assert.deepEqual(missingNodeFlags([], ""), NODE_FLAGS);
    assert.deepEqual(missingNodeFlags(["--max-semi-space-size=32"], ""), []);
    assert.deepEqual(missingNodeFlags([], "--trace-warnings --max-semi-space-size=16"), []);
    assert.deepEqual(missingNodeFlags(["--inspect"], undefined), NODE_FLAGS);
  });

  it("runs a script again with the flags and passes its exit code on", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tributary-flags-"));
    const script = path.join(dir, "probe.js");
    const out = path.join(dir, "argv.json");
    fs.writeFileSync(
      script,
      `require("fs").writeFileSync(${JSON.stringify(out)}, JSON.stringify({ execArgv: process.execArgv, args: process.argv.slice(2) })); process.exit(3);`,
    );
    const code = await runWithFlags(NODE_FLAGS, script, ["run", "flow.json"]);
    assert.equal(code, 3);
    const seen = JSON.parse(fs.readFileSync(out, "utf8")) as { execArgv: string[]; args: string[] };
    for (const flag of NODE_FLAGS) assert.ok(seen.execArgv.includes(flag), `${flag} given`);
    assert.deepEqual(seen.args, ["run", "flow.json"]);
  });

  it("tributary run reports a missing flow file once, and exits 1, through the second process", () => {
    const result = spawnSync(process.execPath, [bin, "run", "/nonexistent/flow.json"], {
      encoding: "utf8",
      env: { ...process.env, NODE_OPTIONS: "" },
    });
    assert.equal(result.status, 1);
    const output = `${result.stdout}${result.stderr}`;
    assert.equal(output.match(/cannot read the flow file/g)?.length, 1, output);
  });
});
