import type { NodeDef, NodeRedApi, RedNode } from "../lib/red";
import { wholeNumber } from "../lib/node-config";
import { runRegistry } from "../lib/run-registry";
import { stateStoreFor, type AuditEntry } from "../lib/state-store";
import { errorStatus, formatCount, ThrottledStatus } from "../lib/status";
import type { RunSummary, SyncMeta } from "../lib/types";

const DAY_MS = 24 * 60 * 60 * 1000;

export = function register(RED: NodeRedApi): void {
  function AuditLogNode(this: RedNode, def: NodeDef): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const status = new ThrottledStatus(node);
    let retentionDays = 30;
    try {
      retentionDays = wholeNumber(def.retentionDays, "retention", 30, 0);
    } catch (err) {
      node.status(errorStatus((err as Error).message));
      node.error((err as Error).message);
    }
    const recordUnchanged = def.recordUnchanged === true;
    let entries = 0;

    const prune = async () => {
      if (retentionDays === 0) return;
      const store = await stateStoreFor(RED.settings.userDir);
      const removed = await store.pruneAudit(
        new Date(Date.now() - retentionDays * DAY_MS).toISOString(),
      );
      if (removed) node.log(`removed ${removed} audit entries older than ${retentionDays} days`);
    };
    prune().catch((err: Error) => node.warn(`could not prune the audit log: ${err.message}`));
    const timer = setInterval(() => prune().catch(() => undefined), DAY_MS);
    timer.unref();

    node.on("input", (msg, send, done) => {
      const sync = msg.sync as SyncMeta | undefined;
      const record = async () => {
        const store = await stateStoreFor(RED.settings.userDir);
        if (
          msg.topic === "tributary/run" &&
          msg.payload &&
          typeof msg.payload === "object" &&
          "runId" in msg.payload
        ) {
          const summary = msg.payload as RunSummary;
          if (summary.runId && !(await store.getRun(summary.runId)))
            await store.saveRun({ ...summary, flowId: null });
          status.set({
            fill: summary.status === "failed" ? "red" : "green",
            shape: "dot",
            text: `${formatCount(entries)} entries, last run ${summary.status}`,
          });
          return;
        }
        if (!sync) return;
        const rows: AuditEntry[] = [];
        const { runId, batch } = sync;
        for (const o of sync.outcomes ?? []) {
          if (!recordUnchanged && o.action === "unchanged") continue;
          rows.push({
            runId,
            batch,
            nodeId: node.id,
            key: o.key,
            action: o.action,
            error: o.error,
          });
        }
        if (!sync.dryRun) await store.addAudit(rows);
        entries += rows.length;
        runRegistry.settle(sync.runId, sync.batch, sync.outcomes, node.id);
        status.set({ fill: "green", shape: "dot", text: `${formatCount(entries)} entries` });
      };
      record().then(
        () => {
          send(msg);
          done();
        },
        (err: Error) => {
          if (sync?.runId) runRegistry.failBatch(sync.runId, sync.batch, err, undefined, node.id);
          node.status(errorStatus(err.message));
          done(err);
        },
      );
    });

    node.on("close", (_removed: boolean, done: () => void) => {
      clearInterval(timer);
      done();
    });
  }

  RED.nodes.registerType("tributary-audit-log", AuditLogNode);
};
