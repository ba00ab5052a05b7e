// Reads the HH-RLHF JSONL.gz (chosen/rejected full transcripts) into prompt + two responses,
// skipping rows the two sides of which are identical or empty, with a count of what was skipped.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

/** Anthropic's HH-RLHF helpful-base test split, shipped with the repository (see its README). */
export const HH_TEST_FILE = fileURLToPath(
  new URL('./data/hh-rlhf/helpful-base-test.jsonl.gz', import.meta.url),
);

export interface HHPair {
  prompt: string;
  chosen: string;
  rejected: string;
}

const ASSISTANT = '\n\nAssistant:';

export function readHH(path: string): { pairs: HHPair[]; skipped: number } {
  const text = gunzipSync(readFileSync(path)).toString('utf8');
  const pairs: HHPair[] = [];
  let skipped = 0;
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const row = JSON.parse(line) as { chosen?: string; rejected?: string };
    const chosen = row.chosen ?? '';
    const rejected = row.rejected ?? '';
    // The sides differ only in the final Assistant turn: the prompt is everything before it.
    const cut = Math.max(chosen.lastIndexOf(ASSISTANT), 0);
    const prompt = chosen.slice(0, cut);
    const a = chosen.slice(cut + ASSISTANT.length).trim();
    const b = rejected.startsWith(prompt) ? rejected.slice(cut + ASSISTANT.length).trim() : '';
    if (chosen === rejected || !a || !b || a === b) {
      skipped++;
      continue;
    }
    pairs.push({ prompt, chosen: a, rejected: b });
  }
  return { pairs, skipped };
}
