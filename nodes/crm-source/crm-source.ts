import type { NodeDef, NodeRedApi, RedNode } from "../lib/red";
import { registerManagementRoutes } from "../lib/api/routes";
import type { CrmConnectionNode } from "../lib/crm/index";
import { CrmReader } from "../lib/crm/reader";
import { connectionEvents } from "../lib/crm/revoke";
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
  object: string;
  fields: string[];
  mode: SyncMode;
  batchSize: number;
  maxInFlight: number;
  settleTimeoutMs: number;
  lookback: number;
}

function readSettings(def: NodeDef): SourceSettings {
  return {
    object: requiredText(
      def.object,
      "object",
      "choose the CRM object to read (e.g. contacts, Contact, persons)",
    ),
    fields: listOfNames(def.fields, "fields", false),
    mode: oneOf(def.mode, "mode", MODES, "incremental"),
    batchSize: wholeNumber(def.batchSize, "batch size", 500),
    maxInFlight: wholeNumber(def.maxInFlight, "batches in flight", 2),
    settleTimeoutMs: wholeNumber(def.settleTimeout, "settle timeout", 300) * 1000,
    lookback: wholeNumber(def.lookback, "look-back", 0, 0),
  };
}

export = function register(RED: NodeRedApi): void {
  registerManagementRoutes(RED);

  function CrmSourceNode(this: RedNode, def: NodeDef): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const status = new ThrottledStatus(node);
    let settings: SourceSettings | null = null;
    let configError: Error | null = null;
    const connectionNode = RED.nodes.getNode(
      String(def.connection ?? ""),
    ) as unknown as CrmConnectionNode | null;
    try {
      if (!connectionNode || typeof connectionNode.provider !== "function")
        throw new TributaryError(
          "config",
          "connection is not set: choose a tributary-crm-connection",
        );
      connectionNode.crmSettings(); // a broken connection shows on this node at deploy too
      settings = readSettings(def);
    } catch (err) {
      configError = err as Error;
      node.status(errorStatus(configError.message));
      node.error(configError.message);
    }
    let current: Run | null = null;

    const reader = () =>
      new CrmReader(connectionNode!.provider(), {
        object: settings!.object,
        fields: settings!.fields,
        lookback: settings!.lookback,
        label: connectionNode!.label(),
      });

    async function startRun(
      options: RunOptions = {},
      onRegistered?: (runId: string) => void,
    ): Promise<RunSummary> {
      if (configError || !settings || !connectionNode)
        throw configError ?? new Error("not configured");
      const mode = options.mode ?? settings.mode;
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
        reader: reader(),
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
        entity: settings?.object ?? "",
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

    // Check the object and fields at deploy, so a typo shows before the first run.
    if (settings && connectionNode && settings.fields.length) {
      reader()
        .open(settings.mode)
        .catch((err: Error) => {
          if (current) return;
          node.status(errorStatus(err.message));
          node.error(err.message);
        });
    }

    // A revoked connection stops the run under way, with the reason on the status.
    const stopListening = connectionEvents.onRevoked((event) => {
      if (!connectionNode || event.connectionId !== connectionNode.id) return;
      current?.fail(new Error(`the connection was revoked (${event.status})`));
      status.final(errorStatus(`connection revoked: ${event.status}`));
    });

    sources.register({
      id: node.id,
      type: "tributary-crm-source",
      name: String(def.name || settings?.object || node.id),
      flowId: node.z,
      trigger,
      start,
      isRunning: () => current !== null,
    });

    node.on("input", (msg, _send, done) => {
      const mode = msg.mode === "full" || msg.mode === "incremental" ? msg.mode : undefined;
      trigger({ mode, fromInput: true }).then(
        (summary) => done(summary.status === "failed" ? new Error(summary.error) : undefined),
        (err: Error) => done(err),
      );
    });

    node.on("close", (_removed: boolean, done: () => void) => {
      stopListening();
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

  RED.nodes.registerType("tributary-crm-source", CrmSourceNode);
};
