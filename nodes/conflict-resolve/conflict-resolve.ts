import type { NodeDef, NodeRedApi, RedNode } from "../lib/red";
import type { DbConnectionNode } from "../lib/db/connection";
import { TributaryError } from "../lib/db/errors";
import { checkLookup, lookupByKeys } from "../lib/db/table-lookup";
import {
  decide,
  STRATEGIES,
  type Decision,
  type PendingState,
  type Strategy,
} from "../lib/conflict/resolver";
import { keyOfValues, keyString, recordHash } from "../lib/conflict/record-hash";
import { listOfNames, oneOf, requiredText } from "../lib/node-config";
import { runRegistry, type SettledEvent } from "../lib/run-registry";
import { stateStoreFor, type StateStore } from "../lib/state-store";
import { errorStatus, formatCount, ThrottledStatus } from "../lib/status";
import type { Outcome, SyncMeta, SyncRecord, Value } from "../lib/types";

/** One batch on its way through resolve: what decideBatch needs. */
interface BatchContext {
  records: SyncRecord[];
  sync: SyncMeta | undefined;
  keyFields: string[];
  /** keyString of each record, in order. */
  keys: string[];
  /** Review items resolved as "source", written with this batch. */
  resolved: Array<{ id: number; record: SyncRecord }>;
  scope: string;
  incomingIsFirst: boolean;
}

interface Pending {
  scope: string;
  incomingIsFirst: boolean;
  states: PendingState[];
  keyFields: string[];
  reviewIds: number[];
}

export = function register(RED: NodeRedApi): void {
  function ConflictResolveNode(this: RedNode, def: NodeDef): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const status = new ThrottledStatus(node);
    let configError: Error | null = null;
    let strategy: Strategy = "source-wins";
    let table = "";
    let keyColumns: string[] = [];
    const connectionNode = RED.nodes.getNode(
      String(def.connection ?? ""),
    ) as DbConnectionNode | null;
    try {
      if (!connectionNode)
        throw new TributaryError(
          "config",
          "connection is not set: choose the target's tributary-db-connection",
        );
      strategy = oneOf(def.strategy, "strategy", STRATEGIES, "source-wins");
      table = requiredText(
        def.table,
        "table",
        "choose the target table the records are compared with",
      );
      keyColumns = listOfNames(def.keyColumns, "key columns", false);
      if (
        strategy === "newest-wins" &&
        !(typeof def.sourceTimestamp === "string" && def.sourceTimestamp.trim())
      ) {
        throw new TributaryError(
          "config",
          'newest-wins needs the timestamp field: set "source timestamp" (e.g. updated_at)',
        );
      }
    } catch (err) {
      configError = err as Error;
      node.status(errorStatus(configError.message));
      node.error(configError.message);
    }
    if (!configError && connectionNode) {
      checkLookup(connectionNode.connection(), table, keyColumns).catch((err: Error) => {
        node.status(errorStatus(err.message));
        node.error(err.message);
      });
      // A store that cannot open says so on the first batch.
      stateStoreFor(RED.settings.userDir)
        .then((store) => store.prepareReads())
        .catch(() => undefined);
    }
    const sourceTimestamp = String(def.sourceTimestamp ?? "").trim();
    const targetTimestamp = String(def.targetTimestamp ?? "").trim() || sourceTimestamp;
    const pending = new Map<string, Pending>();
    // Commits run one after another. A batch waits for them before reading states only
    // when one of its keys is still being committed: a key's state depends on that key's
    // earlier writes alone, so unrelated batches go on.
    let commits: Promise<void> = Promise.resolve();
    // The keys of each batch whose states are queued or being committed.
    const committing = new Set<Set<string>>();
    // Review resolutions a batch took and has not applied yet: the next batch must not
    // take (and write) them again. Released when applied, or when the batch failed.
    const taken = new Set<number>();
    const release = (ids: number[]) => ids.forEach((id) => taken.delete(id));
    const queueCommit = (batch: Pending, failed: Set<string>) => {
      const keys = new Set(batch.states.map((s) => s.key));
      committing.add(keys);
      commits = commits.then(async () => {
        try {
          await commit(batch, failed);
        } finally {
          committing.delete(keys);
          release(batch.reviewIds);
        }
      });
    };
    const tally = { passed: 0, unchanged: 0, conflicts: 0 };

    // Sync state is saved only once the sink confirmed the write; a failed write
    // must not look "synced", or the next change of that record would be dropped.
    const onSettled = (event: SettledEvent) => {
      const id = `${event.runId}#${event.batch}`;
      const batch = pending.get(id);
      if (!batch) return;
      pending.delete(id);
      const failed = new Set(
        event.outcomes.filter((o) => o.action === "failed").map((o) => keyOfValues(o.key)),
      );
      queueCommit(batch, failed);
    };
    const forget = (id: string) => {
      release(pending.get(id)?.reviewIds ?? []);
      pending.delete(id);
    };
    const onFailedBatch = (event: SettledEvent) => forget(`${event.runId}#${event.batch}`);
    // A run that ended (a timeout, an abort) leaves no batch of its own waiting here.
    const onFinished = (summary: { runId: string }) => {
      for (const id of [...pending.keys()]) if (id.startsWith(`${summary.runId}#`)) forget(id);
    };
    runRegistry.on("settled", onSettled);
    runRegistry.on("failed-batch", onFailedBatch);
    runRegistry.on("finished", onFinished);

    async function commit(batch: Pending, failed: Set<string>): Promise<void> {
      try {
        const store = await stateStoreFor(RED.settings.userDir);
        const states = batch.states
          .filter((s) => !failed.has(s.key))
          .map((s) => ({
            key: s.key,
            sourceHash: batch.incomingIsFirst ? s.incomingHash : s.targetHash,
            targetHash: batch.incomingIsFirst ? s.targetHash : s.incomingHash,
          }));
        await store.saveSyncStates(batch.scope, states);
        await store.markReviewApplied(batch.reviewIds);
      } catch (err) {
        node.error(`could not save the sync state: ${(err as Error).message}`);
      }
    }

    node.on("input", (msg, send, done) => {
      const sync = msg.sync as SyncMeta | undefined;
      const fail = (err: Error) => {
        if (sync?.runId) runRegistry.failBatch(sync.runId, sync.batch, err, undefined, node.id);
        node.status(errorStatus(err.message));
        done(err);
      };
      if (configError || !connectionNode) return fail(configError ?? new Error("not configured"));
      if (!Array.isArray(msg.payload)) {
        return fail(
          new TributaryError(
            "input",
            "msg.payload must be an array of records (a batch from a tributary source)",
          ),
        );
      }
      const keyFields = keyColumns.length ? keyColumns : (sync?.key ?? []);
      if (keyFields.length === 0)
        return fail(
          new TributaryError(
            "config",
            "key columns are empty and msg.sync.key is not set: name the key columns",
          ),
        );
      resolve(msg.payload as SyncRecord[], sync, keyFields).then(
        ({ writes, outcomes, conflicts, state }) => {
          msg.payload = writes;
          if (sync) sync.outcomes = [...(sync.outcomes ?? []), ...outcomes];
          if (state && sync?.runId && !sync.dryRun)
            pending.set(`${sync.runId}#${sync.batch}`, state);
          else if (state && !sync?.dryRun) queueCommit(state, new Set());
          status.set({
            fill: tally.conflicts ? "yellow" : "green",
            shape: "dot",
            text: `${formatCount(tally.passed)} passed, ${formatCount(tally.unchanged)} unchanged, ${formatCount(tally.conflicts)} conflicts`,
          });
          send([
            msg,
            conflicts.length ? { payload: conflicts, topic: "tributary/conflicts", sync } : null,
          ]);
          done();
        },
        (err: Error) => fail(err),
      );
    });

    async function resolve(records: SyncRecord[], sync: SyncMeta | undefined, keyFields: string[]) {
      const connection = connectionNode!.connection();
      const store = await stateStoreFor(RED.settings.userDir);
      const targetId = `${connection.label}/${table}`;
      const origin = sync?.origin ?? `source ${sync?.sourceId ?? "unknown"}/${sync?.entity ?? ""}`;
      const [first, second] = [origin, targetId].sort();
      const scope = `${first} <> ${second}`;
      const incomingIsFirst = origin === first;
      const keys = records.map((r) => keyString(r, keyFields));
      const batches = [...committing];
      if (batches.length && keys.some((key) => batches.some((b) => b.has(key)))) await commits;
      const resolved = sync?.dryRun ? [] : await takeResolutions(store, scope);
      try {
        return await decideBatch({
          records,
          sync,
          keyFields,
          keys,
          resolved,
          scope,
          incomingIsFirst,
        });
      } catch (err) {
        release(resolved.map((r) => r.id));
        throw err;
      }
    }

    async function decideBatch(batch: BatchContext) {
      const { records, sync, keyFields, keys, resolved, scope, incomingIsFirst } = batch;
      const connection = connectionNode!.connection();
      const store = await stateStoreFor(RED.settings.userDir);
      const all = [...records, ...resolved.map((r) => r.record)];
      // The target's rows and the stored states do not depend on each other: ask both at once.
      const [{ rows: targets, fields }, states] = await Promise.all([
        lookupByKeys(connection, table, keyFields, all),
        store.getSyncStates(scope, [
          ...keys,
          ...resolved.map((r) => keyString(r.record, keyFields)),
        ]),
      ]);
      const decisions: Decision[] = decide(records, targets, states, {
        keys,
        strategy,
        keyFields,
        targetFields: fields,
        sourceTimestamp,
        targetTimestamp,
        incomingIsFirst,
      });
      const writes: SyncRecord[] = [];
      const outcomes: Outcome[] = [];
      const conflicts: Array<{
        key: Value[];
        source: SyncRecord;
        target: SyncRecord;
        reviewId?: number;
        reason: string;
      }> = [];
      const states2: PendingState[] = [];
      for (const d of decisions) {
        if (d.kind === "write") {
          writes.push(d.record);
          states2.push(d.state);
          tally.passed += 1;
          continue;
        }
        const key = keyFields.map((k) => d.record[k] ?? null); // for outcomes only
        if (d.kind === "drop") {
          outcomes.push({ key, action: d.action, error: d.reason });
          if (d.state) states2.push(d.state);
          tally.unchanged += 1;
        } else {
          const reviewId = sync?.dryRun
            ? undefined
            : await store.addReview({
                scope,
                nodeId: node.id,
                key,
                sourceRecord: d.record,
                targetRecord: d.target,
              });
          conflicts.push({
            key,
            source: d.record,
            target: d.target,
            reason: d.reason,
            ...(reviewId ? { reviewId } : {}),
          });
          outcomes.push({ key, action: "conflict", error: d.reason });
          tally.conflicts += 1;
        }
      }
      // Resolutions taken in the review queue: "source" writes the record now.
      for (const r of resolved) {
        writes.push(r.record);
        const fieldsOfRecord = Object.keys(r.record).filter((f) => fields.has(f));
        const hash = recordHash(r.record, fieldsOfRecord);
        states2.push({ key: keyString(r.record, keyFields), incomingHash: hash, targetHash: hash });
      }
      const state: Pending = {
        scope,
        incomingIsFirst,
        states: states2,
        keyFields,
        reviewIds: resolved.map((r) => r.id),
      };
      return { writes, outcomes, conflicts, state };
    }

    /** Review items of this node resolved as "source"; "target" and "skip" need no write. */
    async function takeResolutions(
      store: StateStore,
      scope: string,
    ): Promise<Array<{ id: number; record: SyncRecord }>> {
      const items = (await store.listReview({ status: "resolved", nodeId: node.id, scope })).filter(
        (i) => !taken.has(i.id),
      );
      const done = items.filter((i) => i.resolution !== "source").map((i) => i.id);
      await store.markReviewApplied(done);
      const writes = items.filter((i) => i.resolution === "source");
      for (const item of writes) taken.add(item.id);
      return writes.map((i) => ({ id: i.id, record: i.sourceRecord }));
    }

    node.on("close", (_removed: boolean, done: () => void) => {
      runRegistry.off("settled", onSettled);
      runRegistry.off("failed-batch", onFailedBatch);
      runRegistry.off("finished", onFinished);
      // Sync states of batches already written are saved before Node-RED stops (and
      // `tributary run` closes the state store): lost, the next run would take those
      // records for changes on both sides. commit() catches its own errors.
      void commits.then(() => done());
    });
  }

  RED.nodes.registerType("tributary-conflict-resolve", ConflictResolveNode);
};
