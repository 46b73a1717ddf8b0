/**
 * A lease's evidence directory names its start beside its token, as the Python SDK's does, so
 * that two stores on one host (each leasing a profile first with token 1) never write over each
 * other's evidence (rev26).
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import { startedStamp } from "../src/worker.js";

it("names a lease's start as the Python SDK does: UTC to the microsecond", () => {
  assert.equal(startedStamp("2026-12-02T09:45:00.123456Z"), "20261202T094500123456Z");
  assert.equal(startedStamp("2026-12-02T09:45:00Z"), "20261202T094500000000Z");
  assert.equal(startedStamp("2026-12-02T09:45:00.5+00:00"), "20261202T094500500000Z");
  assert.equal(startedStamp("not a time/../x"), "notatimex");
});
