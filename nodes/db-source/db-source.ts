import type { NodeDef, NodeRedApi, RedNode } from "../lib/red";
import { registerManagementRoutes } from "../lib/api/routes";
import type { DbConnectionNode } from "../lib/db/connection";
import { TableReader } from "../lib/db/table-reader";
import { TributaryError } from "../lib/db/errors";
import { listOfNames, oneOf, requiredText, wholeNumber } from "../lib/node-config";
import { runSource } from "../lib/source-run";
import { sources, type TriggerOptions } from "../lib/sources";
import { stateStoreFor } from "../lib/state-store";
import { errorStatus, formatCount, ThrottledStatus } from "../lib/status";
import type { Run } from "../lib/run-registry";
import { emptyCounts, type RunSummary, type SyncMode } from "../lib/types";

const MODES = ["full", "incremental"] as const;

interface RunOptions extends TriggerOptions {
  fromInput?: boolean;
}

interface SourceSettings {
  table: string;
  query: string;
  deletedColumn: string;
  keyColumns: string[];
  cursorColumn: string | null;
  mode: SyncMode;
  batchSize: number;
  maxInFlight: number;
  settleTimeoutMs: number;
  lookback: number;
}

function readSettings(def: NodeDef): SourceSettings {
  const mode = oneOf(def.mode, "mode", MODES, "incremental");
  const cursorColumn =
    typeof def.cursorColumn === "string" && def.cursorColumn.trim()
      ? def.cursorColumn.trim()
      : null;
  if (mode === "incremental" && !cursorColumn) {
    throw new TributaryError(
      "config",
      "cursor column is empty: incremental mode needs one (e.g. updated_at), or choose full mode",
    );
  }
  const query = typeof def.query === "string" ? def.query.trim() : "";
  return {
    table: query
      ? String(def.table ?? "").trim()
      : requiredText(
          def.table,
          "table",
          "choose the table to read (e.g. customers or public.customers), or write a custom query",
        ),
    query,
    deletedColumn: typeof def.deletedColumn === "string" ? def.deletedColumn.trim() : "",
    keyColumns: listOfNames(def.keyColumns, "key columns", true),
    cursorColumn,
    mode,
    batchSize: wholeNumber(def.batchSize, "batch size", 1000),
    maxInFlight: wholeNumber(def.maxInFlight, "batches in flight", 2),
    settleTimeoutMs: wholeNumber(def.settleTimeout, "settle timeout", 300) * 1000,
    lookback: wholeNumber(def.lookback, "look-back", 0, 0),
  };
}

export = function register(RED: NodeRedApi): void {
  registerManagementRoutes(RED);

  function DbSourceNode(this: RedNode, def: NodeDef): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const status = new ThrottledStatus(node);
    let settings: SourceSettings | null = null;
    let configError: Error | null = null;
    const connectionNode = RED.nodes.getNode(
      String(def.connection ?? ""),
    ) as DbConnectionNode | null;
    try {
      if (!connectionNode)
        throw new TributaryError(
          "config",
          "connection is not set: choose a tributary-db-connection",
        );
      connectionNode.connection(); // a broken connection shows on this node at deploy too
      settings = readSettings(def);
    } catch (err) {
      configError = err as Error;
      node.status(errorStatus(configError.message));
      node.error(configError.message);
    }
    let current: Run | null = null;

    async function startRun(
      options: RunOptions = {},
      onRegistered?: (runId: string) => void,
    ): Promise<RunSummary> {
      if (configError || !settings || !connectionNode)
        throw configError ?? new Error("not configured");
      const connection = connectionNode.connection();
      const mode = options.mode ?? settings.mode;
      if (mode === "incremental" && !settings.cursorColumn) {
        throw new TributaryError(
          "config",
          "cursor column is empty: incremental mode needs one (e.g. updated_at)",
        );
      }
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
        reader: new TableReader(connection, { ...settings, params: options.params }),
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
        status.final({
          fill: "yellow",
          shape: "ring",
          text: "skipped: a run is already under way",
        });
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
        entity: settings?.table ?? "",
        mode: settings?.mode ?? "incremental",
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

    // Check the table and columns at deploy, so a typo shows before the first run.
    if (settings && connectionNode && !settings.query) {
      const check = new TableReader(connectionNode.connection(), settings);
      check.open(settings.mode).catch((err: Error) => {
        if (current) return;
        node.status(errorStatus(err.message));
        node.error(err.message);
      });
    }

    sources.register({
      id: node.id,
      type: "tributary-db-source",
      name: String(def.name || settings?.table || node.id),
      flowId: node.z,
      trigger,
      start,
      isRunning: () => current !== null,
    });

    node.on("input", (msg, _send, done) => {
      const mode = msg.mode === "full" || msg.mode === "incremental" ? msg.mode : undefined;
      const params =
        msg.params && typeof msg.params === "object"
          ? (msg.params as Record<string, unknown>)
          : undefined;
      trigger({ mode, params, fromInput: true }).then(
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
  }

  RED.nodes.registerType("tributary-db-source", DbSourceNode);
};
