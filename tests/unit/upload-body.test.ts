// The streamed import body: whatever pieces the bytes arrive in, the file written is the content
// field's value exactly (escapes, surrogate pairs cut between pieces, a quote after backslashes),
// and a malformed string is refused with 400.
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { receiveUpload } from '../../core/services/import-source.js';

const LIMIT = 1 << 20;

/** The body's bytes in pieces of `size` (cutting UTF-8 sequences and escapes anywhere). */
function pieces(body: string, size: number): Readable {
  const bytes = Buffer.from(body, 'utf8');
  const parts: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += size) parts.push(bytes.subarray(at, at + size));
  return Readable.from(parts);
}

async function received(body: string, size: number) {
  const { fields, upload } = await receiveUpload(pieces(body, size), undefined, LIMIT);
  try {
    return { fields, text: upload ? await readFile(upload.file, 'utf8') : null };
  } finally {
    await upload?.dispose();
  }
}

const CONTENT = [
  '{"prompt":"Say \\"hi\\"","chosen":" hi\\\\","rejected":" no"}',
  'tab\there, cr\r, back\\slash, \\\\"quoted\\\\", slash / and \u0001 control',
  'emoji 😀 and 𝄞, accents é ü, CJK 漢字, \u2028 line separator',
  'ends with backslashes \\\\\\\\',
].join('\n');

describe('receiveUpload', () => {
  it('writes the content exactly, whatever the pieces the body arrives in', async () => {
    const body = JSON.stringify({ format: 'trl', source: 'unit', content: CONTENT, onError: 'skip' });
    // Escapes as JSON.stringify writes them, and \\u escapes for every character, both cut anywhere.
    const escaped = `{"format":"trl","content":"${[...CONTENT]
      .map((c) => (c.length === 2 ? c : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`))
      .join('')
      .replace(/[\ud800-\udfff]{2}/g, (pair) =>
        pair
          .split('')
          .map((unit) => `\\u${unit.charCodeAt(0).toString(16)}`)
          .join(''),
      )}"}`;
    for (const size of [1, 2, 3, 5, 7, 13, 64, 1 << 16]) {
      const plain = await received(body, size);
      expect(plain.text, `pieces of ${size}`).toBe(CONTENT);
      expect(plain.fields).toEqual({ format: 'trl', source: 'unit', onError: 'skip' });
      const coded = await received(escaped, size);
      expect(coded.text, `\\u-escaped, pieces of ${size}`).toBe(CONTENT);
    }
  });

  it('refuses bad escapes and raw control characters in the content with 400', async () => {
    for (const inner of ['bad \\x escape', 'short \\u12 escape', 'raw \u0001 control', 'raw\nline end']) {
      for (const size of [1, 4, 1 << 16]) {
        await expect(
          received(`{"format":"trl","content":"${inner}"}`, size),
          `${JSON.stringify(inner)} in pieces of ${size}`,
        ).rejects.toMatchObject({ statusCode: 400, message: expect.stringMatching(/not valid JSON/) });
      }
    }
  });

  it('keeps a lone surrogate out of the file and notes its line', async () => {
    const { upload } = await receiveUpload(
      pieces('{"format":"trl","content":"line one\\nlone \\ud800 here\\npair \\ud83d\\ude00"}', 3),
      undefined,
      LIMIT,
    );
    try {
      expect(await readFile(upload!.file, 'utf8')).toBe('line one\nlone \ufffd here\npair 😀');
      expect([...upload!.lineProblems.keys()]).toEqual([2]);
    } finally {
      await upload!.dispose();
    }
  });
});
