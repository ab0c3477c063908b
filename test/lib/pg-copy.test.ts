/**
 * The PostgreSQL COPY read path without a server: COPY's text format as records, however
 * the output is cut into chunks, and the batch's bounds as SQL literals.
 */
import assert from "node:assert/strict";
import knexFactory from "knex";
import { pgDialect } from "../../nodes/lib/db/pg";
import { CopyTextRows, boundSettings, settingsSelect } from "../../nodes/lib/db/pg-copy";
import type { RowLayout } from "../../nodes/lib/db/dialect";

const layout: RowLayout = {
  names: ["id", "name", "note"],
  parsers: [(t) => `id:${t}`, (t) => t, (t) => t],
  fast: true,
};

function read(chunks: Buffer[]) {
  const rows = new CopyTextRows(layout);
  for (const chunk of chunks) rows.write(chunk);
  return rows.end();
}

/** `bytes` cut at every position: each way the server's output may arrive. */
function everySplit(bytes: Buffer): Buffer[][] {
  const splits: Buffer[][] = [];
  for (let at = 1; at < bytes.length; at += 1)
    splits.push([bytes.subarray(0, at), bytes.subarray(at)]);
  return splits;
}

describe("COPY text format as records", () => {
  it("unescapes tabs, newlines, backslashes and tells NULL from the text \\N", () => {
    // What COPY TO writes for: a\tb | line1\nline2\r | back\slash | NULL | "\N" as text | ""
    const text = "1\ta\\tb\tline1\\nline2\\r\n2\tback\\\\slash\t\\N\n3\t\\\\N\t\n";
    assert.deepEqual(read([Buffer.from(text)]), [
      { id: "id:1", name: "a\tb", note: "line1\nline2\r" },
      { id: "id:2", name: "back\\slash", note: null },
      { id: "id:3", name: "\\N", note: "" },
    ]);
  });

  it("reads the same records wherever a chunk ends, inside a row or a UTF-8 character", () => {
    const bytes = Buffer.from("1\tGrüße 🚀\t日本語\n2\t\\N\tx\\ty\n");
    const expected = [
      { id: "id:1", name: "Grüße 🚀", note: "日本語" },
      { id: "id:2", name: null, note: "x\ty" },
    ];
    for (const chunks of everySplit(bytes)) assert.deepEqual(read(chunks), expected);
    // A byte at a time: rows that span many chunks, most of them without a line's end.
    const bytewise = [...bytes].map((byte) => Buffer.from([byte]));
    assert.deepEqual(read(bytewise), expected);
  });

  it("fails on a row with too many or too few fields, and on output cut inside a row", () => {
    assert.throws(
      () => read([Buffer.from("1\ta\tb\tc\n")]),
      /COPY row has 4 field\(s\), expected 3/,
    );
    assert.throws(() => read([Buffer.from("1\ta\n")]), /COPY row has 2 field\(s\), expected 3/);
    assert.throws(() => read([Buffer.from("1\ta\tb\n2\tc")]), /COPY output ended inside a row/);
  });
});

describe("a batch's bounds for COPY, which takes no parameters", () => {
  it("reads each $n from a session setting, cast to the parameter's type", () => {
    assert.equal(
      settingsSelect('select * from "t" where ("k", "n") > ($1, $2) limit $10', [
        "text",
        "timestamp with time zone",
        ...Array(7).fill("x"),
        "bigint",
      ]),
      `select * from "t" where ("k", "n") > (current_setting('tributary.p1')::text, ` +
        `current_setting('tributary.p2')::timestamp with time zone) limit current_setting('tributary.p10')::bigint`,
    );
  });

  it("leaves $n inside quoted names, text and comments alone", () => {
    assert.equal(
      settingsSelect(`select "price$1", 'cost $2' /* $3 */ from "t$2" where "a" = $1`, ["integer"]),
      `select "price$1", 'cost $2' /* $3 */ from "t$2" where "a" = current_setting('tributary.p1')::integer`,
    );
  });

  it("sets the settings from bound parameters, for the transaction only", () => {
    assert.equal(
      boundSettings(2),
      "select set_config('tributary.p1', $1, true), set_config('tributary.p2', $2, true)",
    );
  });
});

describe("a server that speaks PostgreSQL's protocol without COPY", () => {
  it("reads the batch by the row protocol and keeps to it for the rest of the run", async () => {
    const sent: string[] = [];
    // The one connection a pool would lend: COPY fails as such servers answer it; a
    // select answers one row. `sent` lists the COPYs and the selects, in order.
    const conn = {
      query(q: string | { text: string; handleError?(err: Error): void }, ...rest: unknown[]) {
        if (typeof q === "string") {
          // Learning the parameters' types, then setting them: what any server answers.
          const types = /pg_prepared_statements/.test(q) ? [{ types: ["bigint", "bigint"] }] : [];
          return Promise.resolve({ rows: types, fields: [] });
        }
        sent.push(q.handleError ? "copy" : "select");
        if (q.handleError) {
          const refusal = Object.assign(new Error('syntax error at or near "stdout"'), {
            code: "42601",
          });
          setImmediate(() => q.handleError!(refusal));
          return q;
        }
        const callback = rest.find((r) => typeof r === "function") as (
          err: Error | null,
          result: unknown,
        ) => void;
        const result = { rows: [{ id: "7" }], fields: [{ name: "id", dataTypeID: 20 }] };
        setImmediate(() => callback(null, result));
        return undefined;
      },
    };
    const knex = knexFactory({ client: "pg" });
    const client = knex.client as { acquireConnection(): unknown; releaseConnection(): unknown };
    client.acquireConnection = async () => conn;
    client.releaseConnection = async () => undefined;
    try {
      const query = () => knex("t").select("*").where("id", ">", 1).limit(5);
      const first = await pgDialect.readRows!(knex, query(), null);
      assert.equal(first.layout.fast, true);
      const second = await pgDialect.readRows!(knex, query(), first.layout);
      assert.deepEqual(second.rows, [{ id: "7" }]);
      assert.equal(second.layout.fast, false);
      const third = await pgDialect.readRows!(knex, query(), second.layout);
      assert.deepEqual(third.rows, [{ id: "7" }]);
      assert.deepEqual(sent, ["select", "copy", "select", "select"]);
    } finally {
      await knex.destroy();
    }
  });
});
