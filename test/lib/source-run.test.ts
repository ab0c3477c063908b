/**
 * runSource end to end without a database: a reader over an in-memory table sorted
 * by (updated_at, id), a sink that settles every batch with outcomes, and the real
 * state store on a temporary SQLite file. Proves what a user sees of full and
 * incremental runs: what is read, where the next run starts, and the summary.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { runRegistry } from "../../nodes/lib/run-registry";
import { runSource, type StreamReader } from "../../nodes/lib/source-run";
import { StateStore, type WatermarkPosition } from "../../nodes/lib/state-store";
import type {
  BatchMessage,
  Outcome,
  OutcomeAction,
  RunSummary,
  SyncMode,
  SyncRecord,
} from "../../nodes/lib/types";

const ENTITY = "sourcerun_orders";

function order(id: number, updatedAt: string): SyncRecord {
  return { id, total: `${id}.50`, updated_at: updatedAt };
}

function stamp(second: number, micro = 1): string {
  return `2026-02-01 08:00:${String(second).padStart(2, "0")}.${String(micro).padStart(6, "0")}+00`;
}

/** An in-memory table read the way TableReader reads one: keyset order, strictly after. */
class MemoryTable implements StreamReader {
  readonly entity = ENTITY;
  readonly keyFields = ["id"];
  cursorField: string | null = null;
  readonly reads: Array<WatermarkPosition | null> = [];
  openError: Error | null = null;

  constructor(readonly rows: SyncRecord[]) {}

  async open(mode: SyncMode): Promise<string[]> {
    if (this.openError) throw this.openError;
    this.cursorField = mode === "incremental" ? "updated_at" : null;
    return [];
  }

  startAfter(watermark: WatermarkPosition | null): WatermarkPosition | null {
    return watermark;
  }

  async readBatch(after: WatermarkPosition | null, limit: number): Promise<SyncRecord[]> {
    this.reads.push(after);
    const sorted = [...this.rows].sort((a, b) =>
      this.compare(this.positionOf(a), this.positionOf(b)),
    );
    return sorted
      .filter((r) => !after || this.compare(this.positionOf(r), after) > 0)
      .slice(0, limit);
  }

  positionOf(record: SyncRecord): WatermarkPosition {
    return { cursor: this.cursorField ? record.updated_at : null, key: [record.id] };
  }

  private compare(a: WatermarkPosition, b: WatermarkPosition): number {
    const cursor = String(a.cursor ?? "").localeCompare(String(b.cursor ?? ""));
    return cursor !== 0 ? cursor : Number(a.key[0]) - Number(b.key[0]);
  }

  /** Changes a row the way an application would: new data, new updated_at. */
  touch(id: number, updatedAt: string): void {
    const row = this.rows.find((r) => r.id === id);
    assert.ok(row);
    row.updated_at = updatedAt;
  }
}

describe("runSource: full and incremental runs over a reader", function () {
  this.timeout(10_000);
  let dir: string;
  let store: StateStore;
  let n = 0;
  let sourceId: string;
  let emitted: BatchMessage[];

  /** What the sink decides per record; inserts by default. */
  let decide: (record: SyncRecord) => OutcomeAction;

  function run(
    reader: StreamReader,
    options: { mode: SyncMode; batchSize?: number; dryRun?: boolean },
  ): Promise<RunSummary> {
    return runSource({
      sourceId,
      flowId: "sourcerun-flow",
      mode: options.mode,
      batchSize: options.batchSize ?? 3,
      maxInFlight: 2,
      settleTimeoutMs: 2000,
      dryRun: options.dryRun,
      reader,
      store,
      emit: (msg) => {
        emitted.push(structuredClone(msg));
        const outcomes: Outcome[] = msg.payload.map((r) => ({ key: [r.id], action: decide(r) }));
        setImmediate(() => runRegistry.settle(msg.sync.runId, msg.sync.batch, outcomes));
      },
    });
  }

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "tributary-sourcerun-"));
    store = await StateStore.open({ file: path.join(dir, "state.sqlite") });
  });

  beforeEach(() => {
    n += 1;
    sourceId = `sourcerun-${n}`;
    emitted = [];
    decide = () => "insert";
  });

  after(async () => {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("full mode reads every row in key order, in batches, and saves no watermark", async () => {
    const table = new MemoryTable([5, 3, 1, 4, 2, 7, 6].map((id) => order(id, stamp(60 - id))));
    const summary = await run(table, { mode: "full", batchSize: 3 });

    assert.equal(summary.status, "succeeded", summary.error);
    assert.deepEqual(
      emitted.map((m) => m.payload.map((r) => r.id)),
      [[1, 2, 3], [4, 5, 6], [7]],
    );
    for (const [i, msg] of emitted.entries()) {
      assert.equal(msg.sync.batch, i + 1);
      assert.equal(msg.sync.mode, "full");
      assert.equal(msg.sync.entity, ENTITY);
      assert.equal(msg.sync.sourceId, sourceId);
      assert.equal(msg.sync.runId, summary.runId);
      assert.deepEqual(msg.sync.key, ["id"]);
      assert.equal(msg.sync.cursor, undefined, "a full run has no cursor range");
    }
    assert.equal(summary.counts.read, 7);
    assert.equal(summary.counts.batches, 3);
    assert.equal(await store.getWatermark(sourceId), undefined, "a full run saved a watermark");
  });

  it("full mode after an incremental run leaves the incremental watermark alone", async () => {
    const table = new MemoryTable([1, 2, 3].map((id) => order(id, stamp(id))));
    await run(table, { mode: "incremental" });
    const before = await store.getWatermark(sourceId);
    assert.ok(before);
    table.rows.push(order(4, stamp(9)));
    const full = await run(table, { mode: "full" });
    assert.equal(full.counts.read, 4);
    assert.deepEqual((await store.getWatermark(sourceId))?.position, before.position);
  });

  it("incremental saves the last settled record's position and the next run reads only newer rows", async () => {
    const table = new MemoryTable([
      order(1, stamp(1)),
      order(2, stamp(2)),
      order(3, stamp(2)), // a tie on updated_at across ids
      order(4, stamp(3, 999999)),
    ]);
    const first = await run(table, { mode: "incremental", batchSize: 3 });
    assert.equal(first.status, "succeeded", first.error);
    assert.equal(first.counts.read, 4);
    assert.equal(first.counts.batches, 2);
    const mark = await store.getWatermark(sourceId);
    assert.deepEqual(mark?.position, { cursor: stamp(3, 999999), key: [4] });
    assert.equal(mark?.cursorField, "updated_at");
    assert.equal(mark?.runId, first.runId);

    // Batch messages carry the cursor range they cover.
    assert.deepEqual(emitted[0].sync.cursor, { field: "updated_at", from: null, to: stamp(2) });
    assert.deepEqual(emitted[1].sync.cursor, {
      field: "updated_at",
      from: stamp(2),
      to: stamp(3, 999999),
    });

    // Two rows change, one row is new; the rest stay as they were.
    table.touch(2, stamp(10));
    table.rows.push(order(5, stamp(11)));
    table.touch(1, stamp(12));
    emitted = [];
    decide = (r) => (r.id === 5 ? "insert" : "update");
    const second = await run(table, { mode: "incremental", batchSize: 3 });
    assert.equal(second.status, "succeeded", second.error);
    assert.deepEqual(
      emitted.flatMap((m) => m.payload.map((r) => r.id)),
      [2, 5, 1],
    );
    assert.deepEqual(table.reads.at(-2), { cursor: stamp(3, 999999), key: [4] });
    assert.equal(emitted[0].sync.cursor?.from, stamp(3, 999999));
    assert.equal(second.counts.read, 3);
    assert.equal(second.counts.insert, 1);
    assert.equal(second.counts.update, 2);
    assert.deepEqual((await store.getWatermark(sourceId))?.position, {
      cursor: stamp(12),
      key: [1],
    });

    emitted = [];
    const third = await run(table, { mode: "incremental" });
    assert.equal(third.status, "succeeded", third.error);
    assert.equal(third.counts.read, 0);
    assert.equal(third.counts.batches, 0);
    assert.equal(emitted.length, 0);
    assert.deepEqual((await store.getWatermark(sourceId))?.position, {
      cursor: stamp(12),
      key: [1],
    });
  });

  it("a table whose size is a multiple of the batch size ends without an empty batch", async () => {
    const table = new MemoryTable([1, 2, 3, 4, 5, 6].map((id) => order(id, stamp(id))));
    const summary = await run(table, { mode: "incremental", batchSize: 3 });
    assert.equal(summary.counts.batches, 2);
    assert.equal(emitted.length, 2);
    assert.ok(emitted.every((m) => m.payload.length === 3));
  });

  it("the summary counts reads, batches and each outcome, and is stored as the run", async () => {
    const table = new MemoryTable(Array.from({ length: 10 }, (_, i) => order(i + 1, stamp(i + 1))));
    const actions: OutcomeAction[] = ["insert", "update", "unchanged", "insert", "skipped"];
    decide = (r) => actions[(Number(r.id) - 1) % actions.length];
    const summary = await run(table, { mode: "incremental", batchSize: 4 });

    assert.equal(summary.status, "succeeded", summary.error);
    assert.deepEqual(
      { ...summary.counts },
      {
        read: 10,
        batches: 3,
        insert: 4,
        update: 2,
        delete: 0,
        unchanged: 2,
        skipped: 2,
        conflict: 0,
        failed: 0,
      },
    );
    assert.equal(summary.sourceId, sourceId);
    assert.equal(summary.entity, ENTITY);
    assert.equal(summary.mode, "incremental");
    assert.equal(summary.error, undefined);
    assert.ok(
      summary.finishedAt && Date.parse(summary.finishedAt) >= Date.parse(summary.startedAt),
    );

    const stored = await store.getRun(summary.runId);
    assert.equal(stored?.status, "succeeded");
    assert.equal(stored?.flowId, "sourcerun-flow");
    assert.deepEqual(stored?.counts, summary.counts);
    assert.equal(stored?.finishedAt, summary.finishedAt);
  });

  it("records a sink reports as failed fail the run, and the summary says where to look", async () => {
    const table = new MemoryTable([1, 2, 3].map((id) => order(id, stamp(id))));
    decide = (r) => (r.id === 2 ? "failed" : "insert");
    const summary = await run(table, { mode: "incremental" });
    assert.equal(summary.status, "failed");
    assert.equal(summary.counts.failed, 1);
    assert.equal(summary.counts.insert, 2);
    assert.match(
      summary.error ?? "",
      /1 record\(s\) failed .*see output 2 of the transform or sink/,
    );
  });

  it("a reader that cannot open fails the run with its error and reads nothing", async () => {
    const table = new MemoryTable([order(1, stamp(1))]);
    table.openError = new Error('table "sourcerun_orders" was not found');
    const summary = await run(table, { mode: "incremental" });
    assert.equal(summary.status, "failed");
    assert.match(summary.error ?? "", /table "sourcerun_orders" was not found/);
    assert.equal(table.reads.length, 0);
    assert.equal(emitted.length, 0);
    assert.equal((await store.getRun(summary.runId))?.status, "failed");
    assert.equal(runRegistry.runningFor(sourceId), undefined);
  });

  it("dryRun marks every batch and saves no watermark", async () => {
    const table = new MemoryTable([1, 2, 3, 4].map((id) => order(id, stamp(id))));
    const dry = await run(table, { mode: "incremental", batchSize: 3, dryRun: true });
    assert.equal(dry.status, "succeeded", dry.error);
    assert.equal(dry.counts.read, 4);
    assert.ok(emitted.length > 0 && emitted.every((m) => m.sync.dryRun === true));
    assert.equal(await store.getWatermark(sourceId), undefined, "a dry run saved a watermark");

    // A real run afterwards still starts from the beginning.
    emitted = [];
    const real = await run(table, { mode: "incremental", batchSize: 3 });
    assert.equal(real.counts.read, 4);
    assert.ok(emitted.every((m) => m.sync.dryRun === undefined));
    assert.deepEqual((await store.getWatermark(sourceId))?.position, {
      cursor: stamp(4),
      key: [4],
    });
  });
});
