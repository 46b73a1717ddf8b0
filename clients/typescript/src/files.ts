// Files the worker SDK keeps beside a lease (its evidence), written as the Python SDK writes them
// (workers/_evidence.py `write_whole`).
import { randomBytes } from "node:crypto";
import { open, rename, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/**
 * `data` as the file at `path`, whole or not at all: written to a file of its own beside it,
 * then renamed over it. A full or failing disk leaves neither an empty or cut file nor a
 * half-overwritten one (rev44: a full disk left a 0-byte `evidence.json` and `final.png` beside
 * a release that said neither was kept); rejects with the write's error. `mode`, when given, is
 * the file's whatever the umask (the WebRTC policy pinned in a profile's 0600 preferences).
 */
export async function writeWhole(path: string, data: string | Uint8Array, mode?: number): Promise<void> {
  const temporary = join(dirname(path), `.${basename(path)}.${randomBytes(4).toString("hex")}.partial`);
  const handle = await open(temporary, "wx", mode ?? 0o666);
  try {
    try {
      if (mode !== undefined) await handle.chmod(mode); // whatever the umask took away
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, path);
  } catch (failed) {
    await unlink(temporary).catch(() => undefined);
    throw failed;
  }
}
