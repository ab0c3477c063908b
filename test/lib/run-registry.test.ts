/**
 * The run registry and back pressure (DESIGN.md §4), checked the way a user would see
 * them: how many batches a source lets out before the sink answers, where the
 * watermark stands after out-of-order, failed or lost batches, and what a second
 * trigger or a shutdown does. The source is runSource over an in-memory reader; the
 * "sink" holds batches and settles them when the test says so.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Run, runRegistry, type RunInfo } from "../../nodes/lib/run-registry";
import { runSource, type StreamReader } from "../../nodes/lib/source-run";
import { StateStore, type WatermarkPosition } from "../../nodes/lib/state-store";
import type {
  BatchMessage,
  Outcome,
  RunSummary,
  SyncMode,
  SyncRecord,
} from "../../nodes/lib/types";

const ENTITY = "registry_people";

function person(id: number): SyncRecord {
  // Microseconds in the cursor, as PostgreSQL returns them.
  return {
    id,
    name: `person ${id}`,
    updated_at: `2026-01-01T00:00:${String(id).padStart(2, "0")}.000001Z`,
  };
}

function people(count: number): SyncRecord[] {
  return Array.from({ length: count }, (_, i) => person(i + 1));
}

/** Records in (updated_at, id) order, read strictly after a position: a keyset read in memory. */
class ArrayReader implements StreamReader {
  readonly entity = ENTITY;
  readonly keyFields = ["id"];
  cursorField: string | null = null;
  reads = 0;

  constructor(readonly rows: SyncRecord[]) {}

  async open(mode: SyncMode): Promise<string[]> {
    this.cursorField = mode === "incremental" ? "updated_at" : null;
    return [];
  }

  startAfter(watermark: WatermarkPosition | null): WatermarkPosition | null {
    return watermark;
  }

  async readBatch(after: WatermarkPosition | null, limit: number): Promise<SyncRecord[]> {
    this.reads += 1;
    const sorted = [...this.rows].sort((a, b) => compare(this.positionOf(a), this.positionOf(b)));
    return sorted.filter((r) => !after || compare(this.positionOf(r), after) > 0).slice(0, limit);
  }

  positionOf(record: SyncRecord): WatermarkPosition {
    return { cursor: this.cursorField ? record.updated_at : null, key: [record.id] };
  }
}

function compare(a: WatermarkPosition, b: WatermarkPosition): number {
  const cursor = String(a.cursor ?? "").localeCompare(String(b.cursor ?? ""));
  return cursor !== 0 ? cursor : Number(a.key[0]) - Number(b.key[0]);
}

/** Stands in for tributary-upsert: keeps every batch until the test settles or fails it. */
class HoldingSink {
  readonly held: BatchMessage[] = [];
  autoSettle = false;

  readonly emit = (msg: BatchMessage): void => {
    this.held.push(msg);
    if (this.autoSettle) setImmediate(() => this.settle(msg.sync.batch));
  };

  message(batch: number): BatchMessage {
    const msg = this.held.find((m) => m.sync.batch === batch);
    assert.ok(
      msg,
      `batch ${batch} was not emitted; emitted: ${this.held.map((m) => m.sync.batch)}`,
    );
    return msg;
  }

  settle(batch: number): void {
    const msg = this.message(batch);
    const outcomes: Outcome[] = msg.payload.map((r) => ({ key: [r.id], action: "insert" }));
    runRegistry.settle(msg.sync.runId, batch, outcomes);
  }

  fail(batch: number, error: Error): void {
    runRegistry.failBatch(this.message(batch).sync.runId, batch, error);
  }

  /** Settles what is held now and everything emitted from now on. */
  settleEverything(): void {
    this.autoSettle = true;
    for (const msg of this.held) this.settle(msg.sync.batch);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitUntil(
  what: string,
  predicate: () => boolean | Promise<boolean>,
  ms = 3000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(5);
  }
}

describe("run registry: back pressure, ordered watermarks, one run per source", function () {
  this.timeout(10_000);
  let dir: string;
  let store: StateStore;
  let sourceNumber = 0;
  let sourceId: string;
  const pending: Array<Promise<RunSummary>> = [];
  const manualRuns: Run[] = [];

  function start(
    reader: StreamReader,
    sink: HoldingSink,
    options: {
      mode?: SyncMode;
      batchSize?: number;
      maxInFlight?: number;
      settleTimeoutMs?: number;
    } = {},
  ): Promise<RunSummary> {
    const done = runSource({
      sourceId,
      mode: options.mode ?? "incremental",
      batchSize: options.batchSize ?? 2,
      maxInFlight: options.maxInFlight ?? 2,
      settleTimeoutMs: options.settleTimeoutMs ?? 5000,
      reader,
      store,
      emit: sink.emit,
    });
    pending.push(done);
    return done;
  }

  async function watermark(id = sourceId): Promise<WatermarkPosition | undefined> {
    return (await store.getWatermark(id))?.position;
  }

  function info(id: string, overrides: Partial<RunInfo> = {}): RunInfo {
    return {
      sourceId: id,
      entity: ENTITY,
      mode: "incremental",
      maxInFlight: 2,
      settleTimeoutMs: 5000,
      ...overrides,
    };
  }

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "tributary-registry-"));
    store = await StateStore.open({ file: path.join(dir, "state.sqlite") });
  });

  beforeEach(() => {
    sourceNumber += 1;
    sourceId = `registry-source-${sourceNumber}`;
  });

  afterEach(async () => {
    runRegistry.endDrain();
    for (const run of manualRuns.splice(0)) runRegistry.finish(run);
    // A failed assertion may leave a run waiting on held batches: fail it so it ends,
    // and drop a run that nothing will finish, so the next test starts clean.
    runRegistry.runningFor(sourceId)?.fail(new Error("test ended"));
    await Promise.allSettled(pending.splice(0));
    const stuck = runRegistry.runningFor(sourceId);
    if (stuck) runRegistry.finish(stuck);
  });

  after(async () => {
    runRegistry.endDrain();
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  describe("back pressure", () => {
    it("emits at most maxInFlight batches before the sink settles any", async () => {
      const reader = new ArrayReader(people(10));
      const sink = new HoldingSink();
      const done = start(reader, sink, { mode: "full", batchSize: 2, maxInFlight: 2 });

      await waitUntil("two batches are out", () => sink.held.length === 2);
      await sleep(100); // time enough for a third batch, if the source were to send one
      assert.equal(sink.held.length, 2, "a third batch left before any settled");
      // One batch is read ahead (overlapping the sink's write) and held, not sent.
      assert.equal(reader.reads, 3, "the source reads exactly one batch ahead of its capacity");
      assert.equal(runRegistry.runningFor(sourceId)?.batchesInFlight, 2);

      sink.settle(1);
      await waitUntil("a third batch is out", () => sink.held.length === 3);
      await sleep(50);
      assert.equal(sink.held.length, 3, "settling one batch let more than one new batch out");
      assert.deepEqual(
        sink.held.map((m) => m.sync.batch),
        [1, 2, 3],
      );

      sink.settleEverything();
      const summary = await done;
      assert.equal(summary.status, "succeeded", summary.error);
      assert.equal(summary.counts.read, 10);
      assert.equal(summary.counts.batches, 5);
      assert.equal(summary.counts.insert, 10);
    });

    it("never has more than maxInFlight batches out over a whole run", async () => {
      const sink = new HoldingSink();
      let peak = 0;
      const emit = sink.emit;
      const reader = new ArrayReader(people(25));
      const done = runSource({
        sourceId,
        mode: "full",
        batchSize: 2,
        maxInFlight: 3,
        settleTimeoutMs: 5000,
        reader,
        store,
        emit: (msg) => {
          emit(msg);
          peak = Math.max(peak, runRegistry.runningFor(sourceId)?.batchesInFlight ?? 0);
          // Settle out of order and late: the newest batch first, after a pause.
          setTimeout(() => sink.settle(msg.sync.batch), 20 - (msg.sync.batch % 3) * 5);
        },
      });
      pending.push(done);
      const summary = await done;
      assert.equal(summary.status, "succeeded", summary.error);
      assert.equal(summary.counts.read, 25);
      assert.equal(summary.counts.batches, 13);
      assert.equal(peak, 3, `peak in flight was ${peak}`);
    });
  });

  describe("watermark follows settled batches in order", () => {
    it("Run.onAdvance waits for batch 1 when batch 2 settles first, then jumps to batch 2", () => {
      const run = new Run<string>(info("registry-plain-run"));
      const advances: Array<[string, number]> = [];
      run.onAdvance = (position, batch) => advances.push([position, batch]);
      run.emitted(1, "after row 2", 2);
      run.emitted(2, "after row 4", 2);
      run.emitted(3, "after row 6", 2);

      run.settle(2, []);
      assert.deepEqual(advances, [], "advanced past batch 1, which had not settled");
      run.settle(1, []);
      assert.deepEqual(advances, [["after row 4", 2]]);
      run.settle(3, []);
      assert.deepEqual(advances, [
        ["after row 4", 2],
        ["after row 6", 3],
      ]);
      run.settle(3, []); // a second sink settling the same batch changes nothing
      assert.equal(advances.length, 2);
      run.dispose();
    });

    it("does not save a watermark when batch 2 settles before batch 1; then saves batch 2's position", async () => {
      const reader = new ArrayReader(people(6));
      const sink = new HoldingSink();
      const done = start(reader, sink, { batchSize: 2, maxInFlight: 2 });
      await waitUntil("two batches are out", () => sink.held.length === 2);

      sink.settle(2);
      await waitUntil("batch 3 is out", () => sink.held.length === 3);
      await sleep(50); // a wrongly saved watermark would be written by now
      assert.equal(await watermark(), undefined, "the watermark moved while batch 1 was in flight");

      sink.settle(1);
      await waitUntil("the watermark is saved", async () => (await watermark()) !== undefined);
      assert.deepEqual(await watermark(), { cursor: person(4).updated_at, key: [4] });

      sink.settle(3);
      const summary = await done;
      assert.equal(summary.status, "succeeded", summary.error);
      assert.deepEqual(await watermark(), { cursor: person(6).updated_at, key: [6] });
      const saved = await store.getWatermark(sourceId);
      assert.equal(saved?.cursorField, "updated_at");
      assert.equal(saved?.entity, ENTITY);
      assert.equal(saved?.runId, summary.runId);
    });
  });

  describe("one run per source", () => {
    it("refuses a second start of the same source while the first runs, counts it, and allows it after", () => {
      const id = `${sourceId}-direct`;
      const skippedBefore = runRegistry.skipped;
      const first = runRegistry.start(info(id));
      assert.ok(first instanceof Run);
      manualRuns.push(first);

      const second = runRegistry.start(info(id));
      assert.ok("refused" in second, "a second run of the same source started");
      assert.match(second.refused, /already under way/);
      assert.ok(second.refused.includes(first.id), "the refusal should name the run under way");
      assert.equal(runRegistry.skipped, skippedBefore + 1);

      const other = runRegistry.start(info(`${id}-other`));
      assert.ok(other instanceof Run, "another source was refused");
      manualRuns.push(other);
      assert.equal(runRegistry.runningFor(id), first);

      runRegistry.finish(first);
      assert.equal(runRegistry.runningFor(id), undefined);
      const third = runRegistry.start(info(id));
      assert.ok(third instanceof Run, "the source could not run again after its run finished");
      manualRuns.push(third);
      assert.equal(runRegistry.skipped, skippedBefore + 1);
    });

    it("runSource returns a skipped summary for a trigger during a run, and runs again afterwards", async () => {
      const sink = new HoldingSink();
      const first = start(new ArrayReader(people(3)), sink, { batchSize: 2 });
      await waitUntil("the first run is out", () => sink.held.length === 2);

      const skipped = await start(new ArrayReader(people(3)), new HoldingSink());
      assert.equal(skipped.status, "skipped");
      assert.match(skipped.error ?? "", /already under way/);
      assert.equal(skipped.counts.read, 0);
      assert.ok(skipped.finishedAt);

      sink.settleEverything();
      assert.equal((await first).status, "succeeded");

      const again = new HoldingSink();
      again.autoSettle = true;
      const rerun = await start(new ArrayReader(people(5)), again, { batchSize: 2 });
      assert.equal(rerun.status, "succeeded", rerun.error);
      assert.equal(
        rerun.counts.read,
        2,
        "the second run should read only the rows after the watermark",
      );
    });
  });

  describe("batches that never settle or fail", () => {
    it("fails the run after settleTimeoutMs with an error naming tributary-upsert; the watermark stays at the last settled batch", async () => {
      const reader = new ArrayReader(people(6));
      const sink = new HoldingSink();
      const started = Date.now();
      const done = start(reader, sink, { batchSize: 2, maxInFlight: 2, settleTimeoutMs: 200 });
      await waitUntil("two batches are out", () => sink.held.length === 2);
      sink.settle(1); // batch 2 is lost on the way
      await waitUntil("batch 3 is out", () => sink.held.length === 3);
      sink.settle(3);

      const summary = await done;
      const elapsed = Date.now() - started;
      assert.equal(summary.status, "failed");
      assert.match(summary.error ?? "", /batch 2 was not settled/);
      assert.match(summary.error ?? "", /tributary-upsert/);
      assert.match(summary.error ?? "", /settle timeout/);
      assert.ok(elapsed >= 200, `failed after ${elapsed} ms, before the timeout`);
      assert.ok(elapsed < 3000, `took ${elapsed} ms: the run hung`);
      assert.deepEqual(await watermark(), { cursor: person(2).updated_at, key: [2] });
      assert.equal(
        runRegistry.runningFor(sourceId),
        undefined,
        "the failed run is still registered",
      );

      const saved = await store.getRun(summary.runId);
      assert.equal(saved?.status, "failed");
      assert.match(saved?.error ?? "", /tributary-upsert/);
    });

    it("reports a lost batch when the settle timeout expires, not a second timeout later", async () => {
      const sink = new HoldingSink();
      const started = Date.now();
      const summary = await start(new ArrayReader(people(1)), sink, { settleTimeoutMs: 300 });
      const elapsed = Date.now() - started;
      assert.equal(summary.status, "failed");
      // With the default of 300 s, a user would wait 10 minutes instead of 5.
      assert.ok(
        elapsed < 300 + 150,
        `the summary came ${elapsed} ms after the start, for a 300 ms timeout`,
      );
    });

    it("failBatch fails the run and the watermark does not pass the failed batch", async () => {
      const reader = new ArrayReader(people(6));
      const sink = new HoldingSink();
      const done = start(reader, sink, { batchSize: 2, maxInFlight: 3 });
      await waitUntil("three batches are out", () => sink.held.length === 3);

      sink.settle(1);
      sink.settle(3);
      sink.fail(2, new Error("target table is read-only"));

      const summary = await done;
      assert.equal(summary.status, "failed");
      assert.match(summary.error ?? "", /batch 2 failed: target table is read-only/);
      assert.deepEqual(await watermark(), { cursor: person(2).updated_at, key: [2] });
    });

    it("a failed batch stops the reading: no batch leaves after it", async () => {
      const reader = new ArrayReader(people(20));
      const sink = new HoldingSink();
      const done = start(reader, sink, { batchSize: 2, maxInFlight: 1 });
      await waitUntil("batch 1 is out", () => sink.held.length === 1);
      sink.fail(1, new Error("boom"));
      const summary = await done;
      assert.equal(summary.status, "failed");
      assert.equal(sink.held.length, 1);
      assert.equal(await watermark(), undefined);
    });

    it("a state store that cannot record the run's start does not leave the source blocked", async () => {
      // e.g. TRIBUTARY_STATE_URL's server is briefly down, or the SQLite file is locked
      let failNext = true;
      const flaky = new Proxy(store, {
        get(target, prop, receiver) {
          if (prop === "saveRun") {
            return async (...args: Parameters<StateStore["saveRun"]>) => {
              if (failNext) {
                failNext = false;
                throw new Error("state store unreachable");
              }
              return target.saveRun(...args);
            };
          }
          const value = Reflect.get(target, prop, receiver) as unknown;
          return typeof value === "function" ? value.bind(target) : value;
        },
      });
      const sink = new HoldingSink();
      sink.autoSettle = true;
      const run = (): Promise<RunSummary> =>
        runSource({
          sourceId,
          mode: "incremental",
          batchSize: 2,
          maxInFlight: 2,
          settleTimeoutMs: 5000,
          reader: new ArrayReader(people(3)),
          store: flaky,
          emit: sink.emit,
        });

      await run().then(
        (summary) => assert.equal(summary.status, "failed"),
        (err: Error) => assert.match(err.message, /state store unreachable/),
      );
      const next = await run();
      assert.equal(
        next.status,
        "succeeded",
        `the run after a state-store error was ${next.status}: ${next.error ?? ""}`,
      );
    });
  });

  describe("drain (shutdown)", () => {
    it("beginDrain refuses new runs and waitIdle resolves when the runs finish", async () => {
      const sink = new HoldingSink();
      const running = start(new ArrayReader(people(3)), sink, { batchSize: 2 });
      await waitUntil("the run is out", () => sink.held.length === 2);

      runRegistry.beginDrain();
      const refused = runRegistry.start(info(`${sourceId}-late`));
      assert.ok("refused" in refused, "a run started during drain");
      assert.match(refused.refused, /shutting down/);
      const late = await runSource({
        sourceId: `${sourceId}-late`,
        mode: "full",
        batchSize: 2,
        maxInFlight: 2,
        settleTimeoutMs: 1000,
        reader: new ArrayReader(people(3)),
        store,
        emit: () => assert.fail("a run emitted during drain"),
      });
      assert.equal(late.status, "skipped");

      // Still busy: waitIdle gives up after its timeout and reports the runs left.
      assert.equal(await runRegistry.waitIdle(50), 1);

      let idle = false;
      const idleWait = runRegistry.waitIdle(5000).then((left) => {
        idle = true;
        return left;
      });
      await sleep(50);
      assert.equal(idle, false, "waitIdle resolved while a run was under way");

      sink.settleEverything(); // in-flight batches still settle during drain
      const summary = await running;
      assert.equal(summary.status, "succeeded", summary.error);
      assert.equal(await idleWait, 0);
      assert.equal(runRegistry.activeRunCount(), 0);
      assert.equal(await runRegistry.waitIdle(10), 0);

      runRegistry.endDrain();
      const after = runRegistry.start(info(`${sourceId}-after`));
      assert.ok(after instanceof Run, "runs stay refused after endDrain");
      manualRuns.push(after);
    });
  });
});
