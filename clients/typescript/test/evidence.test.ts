/**
 * A lease's evidence directory names its start beside its token, as the Python SDK's does, so
 * that two stores on one host (each leasing a profile first with token 1) never write over each
 * other's evidence (rev26).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { it } from "node:test";
import { startedStamp } from "../src/worker.js";

it("names a lease's start as the Python SDK does: UTC to the microsecond", () => {
  assert.equal(startedStamp("2026-12-02T09:45:00.123456Z"), "20261202T094500123456Z");
  assert.equal(startedStamp("2026-12-02T09:45:00Z"), "20261202T094500000000Z");
  assert.equal(startedStamp("2026-12-02T09:45:00.5+00:00"), "20261202T094500500000Z");
  assert.equal(startedStamp("not a time/../x"), "notatimex");
});

it("writes evidence whole or not at all where the disk refuses it midway (rev44)", async () => {
  // A child whose writes past 4 KiB are refused (EFBIG, as a full disk's ENOSPC; the signal
  // that would kill it ignored) writes over a record and a new screenshot, neither fitting.
  const dir = await mkdtemp(join(tmpdir(), "custody-evidence-"));
  try {
    const record = join(dir, "evidence.json");
    await writeFile(record, "the record before\n");
    const files = new URL("../src/files.js", import.meta.url).href;
    const script = `import(${JSON.stringify(files)}).then(async ({ writeWhole }) => {
      for (const [path, text] of [[process.argv[1], "x"], [process.argv[2], "y"]])
        await writeWhole(path, text.repeat(10000)).then(() => console.log("written"), (e) => console.log(e.code));
    })`;
    const limited = `trap '' XFSZ; ulimit -f 4; exec "$0" -e "$1" "$2" "$3"`;
    const args = ["-c", limited, process.execPath, script, record, join(dir, "final.png")];
    const run = spawnSync("bash", args, { encoding: "utf8" });
    assert.equal(run.stdout, "EFBIG\nEFBIG\n", run.stderr);
    assert.equal(await readFile(record, "utf8"), "the record before\n");
    assert.deepEqual(await readdir(dir), ["evidence.json"]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
