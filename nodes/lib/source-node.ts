/**
 * What every source node does around a run, written once for the db and CRM sources:
 * start a run from an input message, the management API or the sidebar; show its
 * progress and summary on the status; send the summary on output 2; register with the
 * source registry; fail a run under way when the node closes.
 */
import { wholeNumber } from "./node-config";
import type { NodeDef, NodeRedApi, RedNode } from "./red";
import type { Run } from "./run-registry";
import { runSource, type StreamReader } from "./source-run";
import { sources, type TriggerOptions } from "./sources";
import { stateStoreFor } from "./state-store";
import { errorStatus, formatCount, ThrottledStatus } from "./status";
import { emptyCounts, type RunSummary, type SyncMode } from "./types";

interface RunOptions extends TriggerOptions {
  fromInput?: boolean;
}

export interface SourceSpec {
  type: string;
  /** What the source reads (table, query, CRM object), for summaries before a run. */
  entity: string;
  /** Settings as read at deploy; null with configError when they are wrong. */
  settings: {
    mode: SyncMode;
    batchSize: number;
    maxInFlight: number;
    settleTimeoutMs: number;
  } | null;
  configError: Error | null;
  /** A reader for one run; throws a clear error when the run cannot start. */
  reader(mode: SyncMode, options: TriggerOptions): StreamReader;
  /** A reader to open at deploy, so a typo shows before the first run. */
  deployCheck?: StreamReader | null;
  /** Run options an input message may carry besides `msg.mode`. */
  inputOptions?(msg: Record<string, unknown>): Partial<TriggerOptions>;
}

export interface RunSettings {
  batchSize: number;
  maxInFlight: number;
  settleTimeoutMs: number;
  lookback: number;
}

/** The run settings every source node has, read from its properties with their defaults. */
export function runSettings(def: NodeDef, defaultBatchSize: number): RunSettings {
  return {
    batchSize: wholeNumber(def.batchSize, "batch size", defaultBatchSize),
    maxInFlight: wholeNumber(def.maxInFlight, "batches in flight", 2),
    settleTimeoutMs: wholeNumber(def.settleTimeout, "settle timeout", 300) * 1000,
    lookback: wholeNumber(def.lookback, "look-back", 0, 0),
  };
}

export interface SourceNode {
  /** Fails the run under way (if any) and shows why on the status. */
  stop(reason: Error, statusText: string): void;
}

export function attachSource(
  RED: NodeRedApi,
  node: RedNode,
  def: NodeDef,
  spec: SourceSpec,
): SourceNode {
  const status = new ThrottledStatus(node);
  let current: Run | null = null;
  if (spec.configError) {
    node.status(errorStatus(spec.configError.message));
    node.error(spec.configError.message);
  }

  async function startRun(
    options: RunOptions = {},
    onRegistered?: (runId: string) => void,
  ): Promise<RunSummary> {
    const { settings } = spec;
    if (spec.configError || !settings) throw spec.configError ?? new Error("not configured");
    const mode = options.mode ?? settings.mode;
    const reader = spec.reader(mode, options);
    const store = await stateStoreFor(RED.settings.userDir);
    status.final({ fill: "blue", shape: "dot", text: "starting" });
    const summary = await runSource({
      sourceId: node.id,
      flowId: node.z,
      mode,
      batchSize: settings.batchSize,
      maxInFlight: settings.maxInFlight,
      settleTimeoutMs: settings.settleTimeoutMs,
      dryRun: options.dryRun,
      reader,
      store,
      emit: (msg) => node.send([msg, null]),
      onStart: (run) => {
        current = run as Run;
        onRegistered?.(run.id);
      },
      onProgress: (run) =>
        status.set({
          fill: "blue",
          shape: "dot",
          text: `running: ${formatCount(run.counts.read)} read, ${run.batchesInFlight} in flight`,
        }),
    });
    current = null;
    showSummary(summary, options.fromInput === true);
    node.send([null, { topic: "tributary/run", payload: summary }]);
    return summary;
  }

  // From an input message, done(err) logs the failure (and reaches Catch nodes).
  function showSummary(summary: RunSummary, fromInput: boolean): void {
    const seconds = summary.finishedAt
      ? (Date.parse(summary.finishedAt) - Date.parse(summary.startedAt)) / 1000
      : 0;
    for (const warning of summary.warnings ?? []) node.warn(warning);
    if (summary.status === "skipped") {
      node.warn(summary.error ?? "run skipped");
      status.final({ fill: "yellow", shape: "ring", text: "skipped: a run is already under way" });
    } else if (summary.status === "failed") {
      if (!fromInput) node.error(`run ${summary.runId} failed: ${summary.error}`);
      status.final(errorStatus(`failed: ${summary.error}`));
    } else {
      const written = summary.counts.insert + summary.counts.update;
      status.final({
        fill: "green",
        shape: "dot",
        text: `${formatCount(summary.counts.read)} read, ${formatCount(written)} written, ${seconds.toFixed(1)} s`,
      });
    }
  }

  function failedToStart(err: Error, fromInput = false): RunSummary {
    const now = new Date().toISOString();
    const summary: RunSummary = {
      runId: "",
      sourceId: node.id,
      entity: spec.entity,
      mode: spec.settings?.mode ?? "incremental",
      status: "failed",
      counts: emptyCounts(),
      startedAt: now,
      finishedAt: now,
      error: err.message,
    };
    status.final(errorStatus(err.message));
    if (!fromInput) node.error(err.message);
    node.send([null, { topic: "tributary/run", payload: summary }]);
    return summary;
  }

  const trigger = (options: RunOptions = {}) =>
    startRun(options).catch((err: Error) => failedToStart(err, options.fromInput));
  const start = (options?: TriggerOptions) =>
    new Promise<{ runId: string; finished: Promise<RunSummary> }>((resolve) => {
      const finished: Promise<RunSummary> = startRun(options, (runId) =>
        resolve({ runId, finished }),
      ).catch(failedToStart);
      // A run that never registered (skipped, or failed before reading) resolves here.
      finished.then(() => resolve({ runId: "", finished }));
    });

  if (spec.settings && spec.deployCheck) {
    spec.deployCheck.open(spec.settings.mode).catch((err: Error) => {
      if (current) return;
      node.status(errorStatus(err.message));
      node.error(err.message);
    });
  }

  sources.register({
    id: node.id,
    type: spec.type,
    name: String(def.name || spec.entity || node.id),
    flowId: node.z,
    trigger,
    start,
    isRunning: () => current !== null,
  });

  node.on("input", (msg, _send, done) => {
    const mode = msg.mode === "full" || msg.mode === "incremental" ? msg.mode : undefined;
    trigger({ mode, ...spec.inputOptions?.(msg), fromInput: true }).then(
      (summary) => done(summary.status === "failed" ? new Error(summary.error) : undefined),
      (err: Error) => done(err),
    );
  });

  node.on("close", (_removed: boolean, done: () => void) => {
    sources.unregister(node.id);
    const run = current;
    if (!run) return done();
    run.fail(new Error("the source was stopped (redeploy or shutdown) before the run finished"));
    // The run ends as soon as its in-flight batches settle or the read returns.
    const deadline = setTimeout(done, 10_000);
    const poll = setInterval(() => {
      if (current === null) {
        clearInterval(poll);
        clearTimeout(deadline);
        done();
      }
    }, 50);
  });

  return {
    stop(reason, statusText) {
      current?.fail(reason);
      status.final(errorStatus(statusText));
    },
  };
}
