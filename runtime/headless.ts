/**
 * `tributary run <flows.json>`: starts Node-RED without editor or HTTP, deploys the
 * flow file, runs each of its sources once (one after another, in file order), prints
 * a line per run and returns the exit code: 0 when every run succeeded.
 */
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { nodeRedSettings } from "../settings";
import { sources } from "../nodes/lib/sources";
import { closeStateStores, stateStoreFor } from "../nodes/lib/state-store";
import type { RunSummary, SyncMode } from "../nodes/lib/types";
import { loadNodeRed, type EmbeddedRed, type MessageEvent } from "./node-red";
import { memoryStorage } from "./memory-storage";
import { unusedCoreNodeFiles } from "./core-nodes";
import { ensureUserDir, StartupError } from "./user-dir";
import { collectGarbage } from "./gc";

const SOURCE_TYPES = new Set(["tributary-db-source", "tributary-crm-source"]);

export interface HeadlessOptions {
  userDir: string;
  mode?: SyncMode;
  env?: NodeJS.ProcessEnv;
  out?: (line: string) => void;
}

interface FlowNode {
  id: string;
  type: string;
  name?: string;
  d?: boolean;
}

export function readFlowFile(file: string): FlowNode[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (err) {
    throw new StartupError(`cannot read the flow file ${file}: ${(err as Error).message}`);
  }
  const nodes = Array.isArray(parsed) ? parsed : (parsed as { flows?: unknown })?.flows;
  if (
    !Array.isArray(nodes) ||
    !nodes.every((n) => n && typeof n === "object" && typeof n.id === "string")
  ) {
    throw new StartupError(`${file} is not a Node-RED flow export (an array of nodes with ids)`);
  }
  return nodes as FlowNode[];
}

export function summaryLine(name: string, summary: RunSummary): string {
  const seconds = summary.finishedAt
    ? (Date.parse(summary.finishedAt) - Date.parse(summary.startedAt)) / 1000
    : 0;
  const c = summary.counts;
  const line =
    `${name} ${summary.entity || "-"} ${summary.status} read=${c.read} written=${c.insert + c.update}` +
    ` failed=${c.failed} ${seconds.toFixed(3)}s`;
  return summary.error ? `${line} error=${JSON.stringify(summary.error)}` : line;
}

async function waitForSources(ids: string[], ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && !ids.every((id) => sources.get(id))) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export async function runFlowFile(file: string, options: HeadlessOptions): Promise<number> {
  const env = options.env ?? process.env;
  const out = options.out ?? ((line: string) => process.stdout.write(`${line}\n`));
  const flow = readFlowFile(file);
  const wanted = flow.filter((n) => SOURCE_TYPES.has(n.type) && !n.d);
  if (wanted.length === 0) {
    out(`no tributary source in ${file}: add a tributary-db-source (or tributary-crm-source)`);
    return 1;
  }
  const userDir = ensureUserDir(options.userDir);
  const settings = nodeRedSettings({
    userDir,
    credentialSecret: headlessSecret(userDir, env),
    adminPasswordHash: null,
    editor: false,
    storageModule: memoryStorage(),
  });
  settings.logging = { console: { level: "warn", metrics: false, audit: false } };
  // Only the core nodes the flow uses: a flow of Tributary nodes loads none of them.
  settings.nodesExcludes = unusedCoreNodeFiles(new Set(flow.map((n) => n.type)));
  const red = loadNodeRed();
  red.init(null, settings);
  // start() resolves before the (empty) initial flows and their credentials have
  // loaded; deploying before then would have its credentials wiped by that load.
  const initialFlows = new Promise<void>((resolve) => red.events.once("flows:started", resolve));
  await red.start();
  await initialFlows;
  const messages = trackMessages(red);
  let failed = 0;
  try {
    await red.runtime.flows.setFlows({ flows: { flows: flow }, deploymentType: "full" });
    await waitForSources(
      wanted.map((n) => n.id),
      10_000,
    );
    // The state store is part of start-up, as in the hosted runtime; a store that
    // cannot open fails each run with its reason, below.
    await stateStoreFor(userDir).catch(() => undefined);
    // Start-up (Node-RED, the nodes, the flow) leaves tens of MB just allocated: collected
    // now, the first run starts with an empty young generation instead of copying and
    // promoting them between its batches, as a run in the hosted runtime would.
    collectGarbage();
    for (const node of wanted) {
      const handle = sources.get(node.id);
      const name = node.name || node.id;
      if (!handle) {
        out(
          `${name} - failed read=0 written=0 failed=0 0.000s error="the source did not start: see the log above"`,
        );
        failed += 1;
        continue;
      }
      const summary = await handle.trigger(options.mode ? { mode: options.mode } : {});
      out(summaryLine(name, summary));
      if (summary.status !== "succeeded") failed += 1;
    }
    // Nodes wired to a source's summary output (a notification on failure, say) get
    // their messages before Node-RED stops.
    await messages.settled(DRAIN_MS);
  } finally {
    messages.stop();
    await red.stop();
    await closeStateStores();
  }
  return failed === 0 ? 0 : 1;
}

const DRAIN_MS = 10_000;

/**
 * Messages delivered to a node and not yet done: a node whose input handler takes
 * `done` counts until it calls it, one without (older nodes) until its handler returned.
 */
function trackMessages(red: EmbeddedRed) {
  // Counted per node and message: the same message can reach a node more than once.
  const pending = new Map<string, number>();
  const id = (nodeId: string, event: MessageEvent) => `${nodeId}\u0001${event.msg?._msgid ?? ""}`;
  const finish = (key: string) => {
    const left = (pending.get(key) ?? 0) - 1;
    if (left > 0) pending.set(key, left);
    else pending.delete(key);
  };
  // Counted once routed to a node that exists, so a message between two nodes is
  // never missed and one on a dangling wire never waited for.
  red.hooks.add("preDeliver.tributary-run", (event) => {
    if (!event.destination) return;
    const key = id(event.destination.id, event);
    pending.set(key, (pending.get(key) ?? 0) + 1);
  });
  red.hooks.add("postReceive.tributary-run", (event) => {
    // Node-RED counts a node's input handlers that take `done` in _expectedDoneCount.
    const node = event.destination?.node as { _expectedDoneCount?: number } | undefined;
    if (event.destination && node?._expectedDoneCount === 0)
      finish(id(event.destination.id, event));
  });
  red.hooks.add("onComplete.tributary-run", (event) => {
    if (event.node) finish(id(event.node.id, event));
  });
  return {
    async settled(ms: number): Promise<void> {
      const deadline = Date.now() + ms;
      while (pending.size > 0 && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 20));
      if (pending.size > 0)
        red.log.warn(
          `stopping with ${pending.size} message(s) still being handled after ${ms / 1000} s (a node that never calls done?)`,
        );
    },
    stop(): void {
      for (const hook of ["preDeliver", "postReceive", "onComplete"])
        red.hooks.remove(`${hook}.tributary-run`);
    },
  };
}

/**
 * The credential secret of a headless run: the environment's, else the one the hosted
 * runtime generated in this user directory (CRM tokens stored there are sealed with
 * it), else a per-run key (the flow's own credentials live only in memory).
 */
export function headlessSecret(userDir: string, env: NodeJS.ProcessEnv): string {
  if (env.TRIBUTARY_CREDENTIAL_SECRET) return env.TRIBUTARY_CREDENTIAL_SECRET;
  try {
    const stored = fs.readFileSync(path.join(userDir, ".credential-secret"), "utf8").trim();
    if (stored) return stored;
  } catch {
    // no generated secret in this user directory
  }
  return randomBytes(32).toString("hex");
}
