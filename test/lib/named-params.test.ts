/**
 * An analyst's SQL with named parameters: each `:name` outside quotes and comments
 * becomes a bound placeholder; what looks like one inside them, and casts, stay as
 * written.
 */
import assert from "node:assert/strict";
import { bindNamedParams, compileNamedParams } from "../../nodes/lib/db/named-params";

describe("named parameters in custom SQL", () => {
  it("binds :name in code and leaves quotes, quoted names, comments and casts alone", () => {
    const compiled = compileNamedParams(
      `select id, note::text, ':not_a' as "col:b" from t -- :not_c\n` +
        `where region = :region /* :not_d */ and updated_at > :last_sync_timestamp limit :batch_size`,
    );
    assert.equal(
      compiled.sql,
      `select id, note::text, ':not_a' as "col:b" from t -- :not_c\n` +
        `where region = ? /* :not_d */ and updated_at > ? limit ?`,
    );
    assert.deepEqual(compiled.names, ["region", "last_sync_timestamp", "batch_size"]);
    assert.deepEqual(
      bindNamedParams(compiled, { region: "EU", last_sync_timestamp: null, batch_size: 5 }),
      ["EU", null, 5],
    );
  });

  it("refuses a ? outside quotes, which would shift every binding after it", () => {
    assert.throws(() => compileNamedParams("select * from t where a = ?"), /use named parameters/);
    assert.equal(compileNamedParams("select '?' from t").sql, "select '?' from t");
  });

  it("names a parameter that has no value", () => {
    assert.throws(
      () => bindNamedParams(compileNamedParams("select :region"), {}),
      /no value was given: set msg\.params\.region/,
    );
  });
});
