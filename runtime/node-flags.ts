/**
 * Node.js flags the CLI runs with. Flags cannot be set once Node.js runs, so
 * `tributary run` started without them runs itself again with them (a shebang with
 * `env -S` would not work on BusyBox, e.g. Alpine images).
 *
 * Two memory modes (bench/RESULTS.md has the measurements):
 * - fast: `--max-semi-space-size=64` gives V8's young generation room for the batches
 *   in flight, so they die young instead of being promoted: initial loads about 15%
 *   faster than in the low mode, for a peak near 300 MB.
 * - low: V8's usual 16 MB young generation, and an old generation that grows by half
 *   its live size before the next full collection: about 175 MB at 200,000 rows as at
 *   1,000,000. Chosen by itself in a container with less than 1 GiB.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import { StartupError } from "./user-dir";

export type MemoryMode = "fast" | "low";

export const MEMORY_FLAGS: Record<MemoryMode, string[]> = {
  fast: ["--max-semi-space-size=64"],
  low: ["--max-semi-space-size=16", "--heap-growing-percent=50"],
};

/** Below this much memory for the container, `tributary run` picks the low mode. */
export const LOW_MEMORY_BELOW = 1024 * 1024 * 1024;

/** The container's memory limit in bytes (cgroup v2, then v1); null when there is none. */
export function containerMemoryLimit(
  read: (file: string) => string = (file) => fs.readFileSync(file, "utf8"),
): number | null {
  for (const file of ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]) {
    let text: string;
    try {
      text = read(file).trim();
    } catch {
      continue;
    }
    const bytes = Number(text);
    // v2 says "max"; v1 says a number near 2^63 when nothing is set.
    return Number.isFinite(bytes) && bytes < 2 ** 60 ? bytes : null;
  }
  return null;
}

/** TRIBUTARY_MEMORY (low or fast); unset: low when the container has less than 1 GiB. */
export function memoryMode(
  env: NodeJS.ProcessEnv,
  limit: number | null = containerMemoryLimit(),
): MemoryMode {
  const chosen = env.TRIBUTARY_MEMORY?.trim();
  if (chosen === "low" || chosen === "fast") return chosen;
  if (chosen) {
    throw new StartupError(
      `TRIBUTARY_MEMORY is "${chosen}": set it to low (less memory) or fast (faster initial loads), or unset it (low when the container has less than 1 GiB)`,
    );
  }
  return limit !== null && limit < LOW_MEMORY_BELOW ? "low" : "fast";
}

/** The flags of `flags` that neither the command line nor NODE_OPTIONS sets. */
export function missingNodeFlags(
  execArgv: string[],
  nodeOptions: string | undefined,
  flags: string[],
): string[] {
  const given = [...execArgv, ...(nodeOptions ?? "").split(/\s+/)].map((arg) => arg.split("=")[0]);
  return flags.filter((flag) => !given.includes(flag.split("=")[0]));
}

const RESPAWNED = "TRIBUTARY_RESPAWNED";

/**
 * In the second process: stop at once when the first one is gone. A first process
 * killed outright (SIGKILL) cannot pass the signal on; its IPC channel closing is the
 * sign, and the sync must stop as abruptly as the killed process did.
 */
export function dieWithParent(): void {
  if (process.env[RESPAWNED] !== "1" || !process.channel) return;
  process.channel.unref(); // the channel alone does not keep this process running
  process.on("disconnect", () => process.kill(process.pid, "SIGKILL"));
}

const FORWARDED: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];

/** Runs `script args` in a new Node.js with `flags` added; resolves with its exit code.
 *  Output is shared; signals reach the child, which shuts down as it would alone. */
export function runWithFlags(flags: string[], script: string, args: string[]): Promise<number> {
  const child = spawn(process.execPath, [...process.execArgv, ...flags, script, ...args], {
    stdio: ["inherit", "inherit", "inherit", "ipc"],
    env: { ...process.env, [RESPAWNED]: "1" },
  });
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  for (const signal of FORWARDED) process.on(signal, forward);
  return new Promise((resolve) => {
    child.on("exit", (code, signal) => {
      for (const s of FORWARDED) process.off(s, forward);
      resolve(code ?? (signal ? 128 + (signalNumber(signal) ?? 0) : 1));
    });
    child.on("error", (err) => {
      console.error(`tributary: could not start Node.js with ${flags.join(" ")}: ${err.message}`);
      resolve(1);
    });
  });
}

function signalNumber(signal: NodeJS.Signals): number | undefined {
  return { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 }[signal as string];
}
