import type { NodeDef, NodeRedApi, RedNode } from "../lib/red";
import type { DbConnectionNode } from "../lib/db/connection";
import { TableWriter, type WriteMode, type WriteResult } from "../lib/db/table-writer";
import type { CrmConnectionNode } from "../lib/crm/index";
import { CrmWriter } from "../lib/crm/writer";
import { TributaryError } from "../lib/db/errors";
import { listOfNames, oneOf, requiredText } from "../lib/node-config";
import { runRegistry } from "../lib/run-registry";
import { errorStatus, formatCount, ThrottledStatus } from "../lib/status";
import type { Outcome, SyncMeta, SyncRecord } from "../lib/types";

const MODES = ["insert", "update", "upsert"] as const;

/** What the node needs of a writer: TableWriter (databases) or CrmWriter (CRMs). */
interface BatchWriter {
  check(): Promise<unknown>;
  write(records: SyncRecord[], dryRun?: boolean, deletedField?: string): Promise<WriteResult>;
}

interface Tally {
  runId: string | null;
  insert: number;
  update: number;
  delete: number;
  unchanged: number;
  failed: number;
}

export = function register(RED: NodeRedApi): void {
  function UpsertNode(this: RedNode, def: NodeDef): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const status = new ThrottledStatus(node);
    let writer: BatchWriter | null = null;
    let configError: Error | null = null;
    try {
      // The target is a database or a CRM (DESIGN §2): `connection` may name either
      // config node; the editor keeps a CRM one in `crmConnection` (one type per property).
      const connectionId = def.target === "crm" ? def.crmConnection : def.connection;
      const connectionNode = RED.nodes.getNode(String(connectionId ?? "")) as
        (DbConnectionNode & Partial<CrmConnectionNode>) | null;
      if (!connectionNode)
        throw new TributaryError(
          "config",
          "connection is not set: choose a tributary-db-connection or a tributary-crm-connection",
        );
      if (connectionNode.type === "tributary-crm-connection") {
        writer = crmWriter(connectionNode as unknown as CrmConnectionNode, def);
      } else
        writer = new TableWriter(connectionNode.connection(), {
          table: requiredText(def.table, "table", "choose the table to write (e.g. customers)"),
          keyColumns: listOfNames(def.keyColumns, "key columns", true),
          mode: oneOf<WriteMode>(def.mode, "mode", MODES, "upsert"),
          columns: listOfNames(def.columns, "columns", false),
          deletes: oneOf(def.deletes, "deletes", ["mark", "delete"] as const, "mark"),
        });
    } catch (err) {
      configError = err as Error;
      node.status(errorStatus(configError.message));
      node.error(configError.message);
    }
    // Check table and key columns at deploy, so a typo shows before the first run.
    writer?.check().catch((err: Error) => {
      node.status(errorStatus(err.message));
      node.error(err.message);
    });

    const tally: Tally = { runId: null, insert: 0, update: 0, delete: 0, unchanged: 0, failed: 0 };
    let warnedFields = false;
    // A batch settles where its journey ends: at an audit-log wired straight to output 1
    // (so a run's summary, and its watermark, come after its audit entries), else here.
    // Looked up at the first batch: the nodes downstream are created after this one.
    let auditDownstream: boolean | null = null;
    const settlesHere = () => {
      auditDownstream ??= outputOne(def).some(
        (id) => RED.nodes.getNode(id)?.type === "tributary-audit-log",
      );
      return !auditDownstream;
    };

    node.on("input", (msg, send, done) => {
      const sync = msg.sync as SyncMeta | undefined;
      const fail = (err: Error, outcomes?: Outcome[]) => {
        if (sync?.runId) runRegistry.failBatch(sync.runId, sync.batch, err, outcomes, node.id);
        node.status(errorStatus(err.message));
        done(err);
      };
      if (configError || !writer) return fail(configError ?? new Error("not configured"));
      if (!Array.isArray(msg.payload)) {
        return fail(
          new TributaryError(
            "input",
            "msg.payload must be an array of records (a batch from a tributary source)",
          ),
        );
      }
      const records = msg.payload as SyncRecord[];
      writer.write(records, sync?.dryRun === true, sync?.deletedField).then(
        (result) => {
          if (result.ignoredFields.length && !warnedFields) {
            warnedFields = true;
            node.warn(
              `fields the target (${String(def.table ?? "")}) does not have were not written: ${result.ignoredFields.join(", ")}`,
            );
          }
          count(tally, sync?.runId ?? null, result.outcomes);
          // Keep what earlier nodes decided (e.g. conflict-resolve's unchanged records).
          const outcomes = [...(sync?.outcomes ?? []), ...result.outcomes];
          if (sync) sync.outcomes = outcomes;
          const failedMsg = result.failed.length
            ? {
                payload: result.failed.map((f) => f.record),
                error: `${result.failed.length} record(s) were not written`,
                failures: result.failed.map((f) => ({ error: f.error })),
                sync,
              }
            : null;
          if (sync?.runId && settlesHere())
            runRegistry.settle(sync.runId, sync.batch, outcomes, node.id);
          status.set({
            fill: tally.failed ? "yellow" : "green",
            shape: "dot",
            text:
              `${formatCount(tally.insert)} inserted, ${formatCount(tally.update)} updated` +
              (tally.delete ? `, ${formatCount(tally.delete)} deleted` : "") +
              (tally.unchanged ? `, ${formatCount(tally.unchanged)} unchanged` : "") +
              (tally.failed ? `, ${formatCount(tally.failed)} failed` : ""),
          });
          send([msg, failedMsg]);
          done();
        },
        (err: Error) => fail(err),
      );
    });
  }

  function outputOne(def: NodeDef): string[] {
    const wires = def.wires as unknown;
    return Array.isArray(wires) && Array.isArray(wires[0]) ? (wires[0] as string[]) : [];
  }

  /** CRM target: `table` is the object, the first key column the field records match by. */
  function crmWriter(connection: CrmConnectionNode, def: NodeDef): CrmWriter {
    return new CrmWriter(connection.provider(), {
      object: requiredText(def.table, "object", "choose the CRM object to write (e.g. contacts)"),
      keyField: listOfNames(def.keyColumns, "key columns", true)[0],
      mode: oneOf<WriteMode>(def.mode, "mode", MODES, "upsert"),
      columns: listOfNames(def.columns, "columns", false),
    });
  }

  function count(tally: Tally, runId: string | null, outcomes: Outcome[]): void {
    if (runId !== tally.runId)
      Object.assign(tally, { runId, insert: 0, update: 0, delete: 0, unchanged: 0, failed: 0 });
    for (const o of outcomes) {
      if (o.action in tally) tally[o.action as Exclude<keyof Tally, "runId">] += 1;
    }
  }

  RED.nodes.registerType("tributary-upsert", UpsertNode);
};
