/** The full collection `tributary run` makes after start-up (runtime/gc.ts). */
import assert from "node:assert/strict";
import { collectGarbage } from "../../runtime/gc";

describe("collectGarbage", () => {
  it("collects an object nothing refers to, without Node.js started with --expose-gc", async () => {
    assert.equal((globalThis as { gc?: unknown }).gc, undefined, "mocha runs without --expose-gc");
    let target: object | null = { rows: new Array(1000).fill("x") };
    const ref = new WeakRef(target);
    target = null;
    // A WeakRef keeps its target alive until the current task ends.
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(ref.deref(), "still there before the collection");
    await new Promise((resolve) => setImmediate(resolve));
    collectGarbage();
    assert.equal(ref.deref(), undefined);
    assert.equal((globalThis as { gc?: unknown }).gc, undefined, "gc is not handed to the process");
  });
});
