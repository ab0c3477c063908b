/**
 * Node.js flags the CLI runs with. Flags cannot be set once Node.js runs, so
 * `tributary run` started without them runs itself again with them (a shebang with
 * `env -S` would not work on BusyBox, e.g. Alpine images).
 *
 * Two memory modes (bench/RESULTS.md has the measurements):
 * - low, the default: a young generation of 16 MB and an old generation that grows by
 *   half its live size before the next full collection: about 175 MB at 200,000 and
 *   at 1,000,000 rows.
 * - fast: `--max-semi-space-size=64` gives the young generation room for the batches
 *   in flight, so they die young instead of being promoted: initial loads about 10–20%
 *   faster, for a peak near 300 MB.
 */
import { spawn } from "node:child_process";
import { StartupError } from "./user-dir";

export type MemoryMode = "low" | "fast";

export const MEMORY_FLAGS: Record<MemoryMode, string[]> = {
  low: ["--max-semi-space-size=16", "--heap-growing-percent=50"],
  fast: ["--max-semi-space-size=64"],
};

/** TRIBUTARY_MEMORY: low (the default) or fast. */
export function memoryMode(env: NodeJS.ProcessEnv): MemoryMode {
  const chosen = env.TRIBUTARY_MEMORY?.trim();
  if (!chosen || chosen === "low") return "low";
  if (chosen === "fast") return "fast";
  throw new StartupError(
    `TRIBUTARY_MEMORY is "${chosen}": set it to low (the default: less memory) or fast (more memory, faster initial loads)`,
  );
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
