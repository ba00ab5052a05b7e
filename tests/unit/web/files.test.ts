// Reading a picked import file (web/src/lib/files.ts): plain text as is, .gz unpacked in the browser,
// @vitest-environment node
// and a message for the user when it cannot be read.
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { readPickedFile } from '../../../web/src/lib/files.js';

const lines =
  '{"prompt": "Hi", "chosen": "Hello", "rejected": "Go away"}\n{"prompt": "é", "chosen": "a", "rejected": "b"}\n';

describe('readPickedFile', () => {
  it('reads a plain file as it is', async () => {
    const picked = await readPickedFile(new File([lines], 'prefs.jsonl'));
    expect(picked).toEqual({ name: 'prefs.jsonl', text: lines, unpackedBytes: null });
  });

  it('unpacks a gzipped file, names it without .gz and counts the unpacked bytes', async () => {
    const picked = await readPickedFile(new File([gzipSync(lines)], 'hh-helpful.JSONL.GZ'));
    expect(picked.name).toBe('hh-helpful.JSONL');
    expect(picked.text).toBe(lines);
    expect(picked.unpackedBytes).toBe(Buffer.byteLength(lines));
  });

  it('says so when a .gz file is not gzip', async () => {
    await expect(readPickedFile(new File(['not gzip at all'], 'data.csv.gz'))).rejects.toThrow(
      'The file could not be unpacked: is it gzip?',
    );
  });
});
