/** The Node.js flags `tributary run` gives itself (runtime/node-flags.ts). */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import {
  containerMemoryLimit,
  MEMORY_FLAGS,
  memoryMode,
  missingNodeFlags,
  runWithFlags,
} from "../../runtime/node-flags";
import { StartupError } from "../../runtime/user-dir";

const bin = path.resolve(__dirname, "..", "..", "..", "bin", "tributary.js");

describe("Node.js flags of the CLI", () => {
  it("are missing until the command line or NODE_OPTIONS sets them, with any value", () => {
    const { fast, low } = MEMORY_FLAGS;
    assert.deepEqual(missingNodeFlags([], "", fast), fast);
    assert.deepEqual(missingNodeFlags(["--max-semi-space-size=32"], "", fast), []);
    assert.deepEqual(missingNodeFlags([], "--trace-warnings --max-semi-space-size=16", fast), []);
    assert.deepEqual(missingNodeFlags(["--inspect"], undefined, low), low);
    assert.deepEqual(missingNodeFlags(["--max-semi-space-size=8"], undefined, low), [
      "--heap-growing-percent=50",
    ]);
  });

  it("the memory mode: TRIBUTARY_MEMORY, else low below 1 GiB of container memory", () => {
    const MiB = 1024 * 1024;
    assert.equal(memoryMode({ TRIBUTARY_MEMORY: "low" }, null), "low");
    assert.equal(memoryMode({ TRIBUTARY_MEMORY: " fast " }, 256 * MiB), "fast");
    assert.equal(memoryMode({}, 512 * MiB), "low");
    assert.equal(memoryMode({}, 2048 * MiB), "fast");
    assert.equal(memoryMode({}, null), "fast");
    assert.throws(
      () => memoryMode({ TRIBUTARY_MEMORY: "small" }, null),
      (err: Error) =>
        err instanceof StartupError &&
        /TRIBUTARY_MEMORY is "small": set it to low/.test(err.message),
    );
  });

  it("reads the container's memory limit from cgroup v2, then v1; none when unlimited", () => {
    const files = (entries: Record<string, string>) => (file: string) => {
      if (!(file in entries)) throw new Error(`ENOENT: ${file}`);
      return entries[file];
    };
    const v2 = "/sys/fs/cgroup/memory.max";
    const v1 = "/sys/fs/cgroup/memory/memory.limit_in_bytes";
    assert.equal(containerMemoryLimit(files({ [v2]: "536870912\n" })), 536870912);
    assert.equal(containerMemoryLimit(files({ [v2]: "max\n", [v1]: "268435456" })), null);
    assert.equal(containerMemoryLimit(files({ [v1]: "268435456\n" })), 268435456);
    assert.equal(containerMemoryLimit(files({ [v1]: "9223372036854771712\n" })), null);
    assert.equal(containerMemoryLimit(files({})), null);
  });

  it("runs a script again with the flags and passes its exit code on", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tributary-flags-"));
    const script = path.join(dir, "probe.js");
    const out = path.join(dir, "argv.json");
    fs.writeFileSync(
      script,
      `require("fs").writeFileSync(${JSON.stringify(out)}, JSON.stringify({ execArgv: process.execArgv, args: process.argv.slice(2) })); process.exit(3);`,
    );
    const code = await runWithFlags(MEMORY_FLAGS.low, script, ["run", "flow.json"]);
    assert.equal(code, 3);
    const seen = JSON.parse(fs.readFileSync(out, "utf8")) as { execArgv: string[]; args: string[] };
    for (const flag of MEMORY_FLAGS.low) assert.ok(seen.execArgv.includes(flag), `${flag} given`);
    assert.deepEqual(seen.args, ["run", "flow.json"]);
  });

  for (const mode of ["low", "fast"] as const) {
    it(`tributary run's second process has the ${mode} mode's flags (TRIBUTARY_MEMORY=${mode})`, () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tributary-flags-"));
      const probe = path.join(dir, "probe.js");
      const seen = path.join(dir, "execArgv.txt");
      fs.writeFileSync(
        probe,
        `require("fs").appendFileSync(${JSON.stringify(seen)}, JSON.stringify(process.execArgv) + "\\n");`,
      );
      const result = spawnSync(process.execPath, [bin, "run", "/nonexistent/flow.json"], {
        encoding: "utf8",
        env: {
          ...process.env,
          TRIBUTARY_MEMORY: mode,
          NODE_OPTIONS: `--require ${probe}`,
        },
      });
      assert.equal(result.status, 1, result.stderr);
      const processes = fs
        .readFileSync(seen, "utf8")
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line) as string[]);
      assert.equal(processes.length, 2, "the first process and the one it started");
      assert.deepEqual(processes[0], []);
      assert.deepEqual(processes[1], MEMORY_FLAGS[mode]);
    });
  }

  it("tributary run stops at once on an unknown TRIBUTARY_MEMORY, naming it", () => {
    const result = spawnSync(process.execPath, [bin, "run", "/nonexistent/flow.json"], {
      encoding: "utf8",
      env: { ...process.env, TRIBUTARY_MEMORY: "tiny", NODE_OPTIONS: "" },
    });
    assert.equal(result.status, 1);
    assert.match(result.stderr, /^tributary: TRIBUTARY_MEMORY is "tiny": set it to low/);
    assert.doesNotMatch(`${result.stdout}${result.stderr}`, /flow file/);
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
