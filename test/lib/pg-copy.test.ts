/**
 * The PostgreSQL COPY read path without a server: COPY's text format as records, however
 * the output is cut into chunks, and the batch's bounds as SQL literals.
 */
import assert from "node:assert/strict";
import knexFactory from "knex";
import { pgDialect } from "../../nodes/lib/db/pg";
import { CopyTextRows, inlineBindings } from "../../nodes/lib/db/pg-copy";
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

describe("a batch's bounds as SQL literals for COPY", () => {
  it("replaces each $n with its value as a literal, quotes doubled and backslashes kept", () => {
    assert.equal(
      inlineBindings('select * from "t" where ("k", "n") > ($1, $2) and "b" = $3 limit $4', [
        "O'Brien \\ co",
        -1.5,
        true,
        5000,
      ]),
      `select * from "t" where ("k", "n") > ( E'O''Brien \\\\ co', -1.5) and "b" = true limit 5000`,
    );
    assert.equal(
      inlineBindings("select $1, $10", [null, ...Array(8).fill(0), "x"]),
      "select null, 'x'",
    );
  });

  it("leaves $n inside quoted names alone", () => {
    assert.equal(
      inlineBindings(`select "price$1" from "t$2" where "a" = $1`, ["v"]),
      `select "price$1" from "t$2" where "a" = 'v'`,
    );
  });

  it("gives up on values without a plain literal, so the row protocol reads that batch", () => {
    assert.equal(inlineBindings("select $1", [Buffer.from("x")]), null);
    assert.equal(inlineBindings("select $1", [[1, 2]]), null);
    assert.equal(inlineBindings("select $1", [Number.NaN]), null);
    assert.equal(inlineBindings("select $2", ["only one"]), null);
  });
});

describe("a server that speaks PostgreSQL's protocol without COPY", () => {
  it("reads the batch by the row protocol and keeps to it for the rest of the run", async () => {
    const sent: string[] = [];
    // The one connection a pool would lend: COPY fails as such servers answer it; a
    // select answers one row.
    const conn = {
      query(q: { text: string; handleError?(err: Error): void }, ...rest: unknown[]) {
        sent.push(q.text);
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
      assert.deepEqual(
        sent.map((text) => (/^copy/.test(text) ? "copy" : "select")),
        ["select", "copy", "select", "select"],
      );
    } finally {
      await knex.destroy();
    }
  });
});
