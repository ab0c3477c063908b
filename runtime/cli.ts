/**
 * The `tributary` command: `start` (the hosted runtime) and `run <flows.json>`
 * (every source of a flow file once, headless).
 */
import path from "node:path";
import { runRegistry } from "../nodes/lib/run-registry";
import { closeStateStores } from "../nodes/lib/state-store";
import { runFlowFile } from "./headless";
import { rotateSecret } from "./rotate-secret";
import { StartupError } from "./user-dir";

const HELP = `tributary — keeps data in sync between databases (Node-RED runtime)

Usage:
  tributary start                 start the hosted runtime (editor, /health, /metrics)
  tributary run <flows.json>      run every source of a flow file once, headless
        [--mode full|incremental]   override the sources' mode for this run
  tributary rotate-secret         re-encrypt stored OAuth tokens and flows_cred.json from
                                  TRIBUTARY_OLD_CREDENTIAL_SECRET to TRIBUTARY_CREDENTIAL_SECRET
                                  (runtime stopped)
  tributary --help

Environment: PORT (1880), HOST (127.0.0.1), TRIBUTARY_USER_DIR (./.tributary),
TRIBUTARY_CREDENTIAL_SECRET, TRIBUTARY_ADMIN_PASSWORD, TRIBUTARY_STATE_URL,
TRIBUTARY_SHUTDOWN_TIMEOUT (30 s). See README.md.`;

function userDir(env: NodeJS.ProcessEnv): string {
  return path.resolve(env.TRIBUTARY_USER_DIR || ".tributary");
}

async function start(env: NodeJS.ProcessEnv): Promise<void> {
  const port = Number(env.PORT || 1880);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new StartupError(`PORT "${env.PORT}" is not a port number`);
  // Loaded here, not at the top: `tributary run` needs no HTTP server (fastify, the
  // admin routes), and headless runs are measured by their memory too.
  const { startServer } = await import("./server");
  const server = await startServer({
    userDir: userDir(env),
    port,
    host: env.HOST || "127.0.0.1",
    env,
  });
  console.log(`Tributary is running: ${server.url}/ (editor), ${server.url}/health`);
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) process.exit(1); // a second signal: stop now
    stopping = true;
    const seconds = Number(env.TRIBUTARY_SHUTDOWN_TIMEOUT || 30);
    console.log(
      `${signal}: no new runs; waiting up to ${seconds} s for ${runRegistry.activeRunCount()} run(s) to settle`,
    );
    runRegistry.beginDrain();
    const left = await runRegistry.waitIdle(seconds * 1000);
    if (left > 0)
      console.log(`${left} run(s) still under way: they resume from their watermark next time`);
    await server.close();
    await closeStateStores();
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
}

export async function main(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<number | null> {
  const [command, ...rest] = argv;
  if (!command || command === "--help" || command === "-h" || command === "help") {
    console.log(HELP);
    return command ? 0 : 1;
  }
  if (command === "start") {
    await start(env);
    return null; // keeps running
  }
  if (command === "run") {
    const file = rest.find((a) => !a.startsWith("--"));
    const modeIndex = rest.indexOf("--mode");
    const mode = modeIndex >= 0 ? rest[modeIndex + 1] : undefined;
    if (!file) throw new StartupError("run needs a flow file: tributary run flows.json");
    if (mode !== undefined && mode !== "full" && mode !== "incremental") {
      throw new StartupError(`--mode "${mode}" is not valid: use full or incremental`);
    }
    return runFlowFile(path.resolve(file), { userDir: userDir(env), mode, env });
  }
  if (command === "rotate-secret") return rotateSecret({ userDir: userDir(env), env });
  throw new StartupError(`unknown command "${command}": see tributary --help`);
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      if (code !== null) process.exit(code);
    },
    (err: Error) => {
      console.error(err instanceof StartupError ? `tributary: ${err.message}` : err.stack);
      process.exit(1);
    },
  );
}
