// Read an inventory file safely (size, binary, encoding checked before parsing), then parse + validate.
import { statSync } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { InventoryError } from '../errors.js';
import type { ClusterSpec } from '../types.js';
import { parseInventoryText } from './parse.js';
import { validateInventory } from './validate.js';

/** An inventory is a few kilobytes; 1 MiB leaves room and keeps a wrong path (a disk image…) cheap. */
export const MAX_INVENTORY_BYTES = 1024 * 1024;

function refuse(file: string, message: string, hint?: string): never {
  throw new InventoryError(file, [{ message, ...(hint ? { hint } : {}) }]);
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** Inventory text from `file`, or InventoryError: missing, not a regular file, too big, empty, binary, not UTF-8. */
export async function readInventoryText(file: string): Promise<string> {
  let size: number;
  try {
    const st = await stat(file);
    if (!st.isFile()) refuse(file, `inventory file is not a regular file`, 'pass the path of an INI inventory file with -i');
    size = st.size;
  } catch (e) {
    if (e instanceof InventoryError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') refuse(file, `inventory file does not exist`, 'check the path given with -i');
    if (code === 'EACCES') refuse(file, `inventory file cannot be read (permission denied)`);
    refuse(file, `inventory file cannot be read: ${(e as Error).message}`);
  }
  if (size > MAX_INVENTORY_BYTES)
    refuse(file, `inventory file is ${mib(size)}: an inventory is at most ${mib(MAX_INVENTORY_BYTES)}`, 'check that -i points at the inventory file');

  // Read at most one byte past the limit: the file may have grown since stat.
  const buf = Buffer.alloc(MAX_INVENTORY_BYTES + 1);
  let length = 0;
  try {
    const fh = await open(file, 'r');
    try {
      for (let n = -1; n !== 0 && length < buf.length; length += n) ({ bytesRead: n } = await fh.read(buf, length, buf.length - length, null));
    } finally {
      await fh.close();
    }
  } catch (e) {
    refuse(file, `inventory file cannot be read: ${(e as Error).message}`);
  }
  const bytes = buf.subarray(0, length);
  if (length > MAX_INVENTORY_BYTES) refuse(file, `inventory file is larger than ${mib(MAX_INVENTORY_BYTES)}`);
  if (bytes.includes(0)) refuse(file, `inventory file contains NUL bytes: it is a binary file, not an INI inventory`, 'check that -i points at the inventory file');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    refuse(file, `inventory file is not valid UTF-8 text`, 'save the inventory as UTF-8');
  }
  if (text.trim() === '') refuse(file, `inventory file is empty`, 'list the masters under [masters] and set vip under [masters:vars]; see inventories/example.ini');
  return text;
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** Read, parse and validate the inventory at `path`; every problem is an InventoryError (exit 2). */
export async function loadInventory(path: string): Promise<ClusterSpec> {
  const file = resolve(path);
  const text = await readInventoryText(file);
  return validateInventory(parseInventoryText(text, file), { fileExists: isFile });
}
