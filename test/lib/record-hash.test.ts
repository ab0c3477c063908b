/** Record hashes are stored in the sync state: their text must never change. */
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { recordHash } from "../../nodes/lib/conflict/record-hash";

const sha = (text: string) => crypto.createHash("sha256").update(text).digest("hex").slice(0, 40);

describe("record hash", () => {
  it("is sha256 of each field's name and lossless value in name order, as stored before", () => {
    const record = { name: "Zoë", id: "42", active: true, score: 1.5, gone: null };
    const fields = ["name", "id", "active", "score", "gone"];
    assert.equal(
      recordHash(record, fields),
      sha(
        "active\u00021\u0003gone\u0002\u0000\u0003id\u000242\u0003name\u0002Zoë\u0003score\u00021.5\u0003",
      ),
    );
  });

  it("compares equal data from different databases equal, and only the fields given", () => {
    const fields = ["id", "flag"];
    assert.equal(
      recordHash({ id: "7", flag: true }, fields),
      recordHash({ id: 7, flag: 1 }, fields),
    );
    assert.equal(
      recordHash({ id: 7, flag: 1, extra: "x" }, fields),
      recordHash({ id: 7, flag: 1 }, fields),
    );
    assert.notEqual(recordHash({ id: 7, flag: 0 }, fields), recordHash({ id: 7, flag: 1 }, fields));
    assert.equal(recordHash({ id: 7 }, []), sha(""));
  });
});
