// Judgments not stored yet, kept in this browser's localStorage from when they are queued until the
// server stored or refused them, one list per signed-in rater and project: a page reloaded or closed
// anyway (or a browser that crashed) sends them on the next visit (see rating-session.svelte.ts).
// Several tabs may share a list; each writes only its own entries.
import type { SubmitBody } from '$shared/index.js';

const PREFIX = 'loom.unsent.';

/** A judgment as kept: what resends it exactly as it was sent. */
export interface KeptJudgment {
  assignmentId: string;
  /** Its Idempotency-Key. */
  key: string;
  body: SubmitBody;
}

/** The localStorage key of a rater's unsent judgments in a project. */
export function unsentList(userId: string, projectId: string): string {
  return `${PREFIX}${userId}.${projectId}`;
}

/** Whether a list is this rater's (only the signed-in rater's lists are written). */
export function isRatersList(list: string, userId: string): boolean {
  return list.startsWith(unsentList(userId, ''));
}

/** Forgets every rater's unsent judgments kept in this browser (on signing out). */
export function forgetUnsentJudgments(): void {
  try {
    for (const key of Object.keys(localStorage)) if (key.startsWith(PREFIX)) localStorage.removeItem(key);
  } catch {
    // No storage: nothing kept.
  }
}

/** The judgments a list keeps, malformed entries left out; none without storage or a readable list. */
export function readUnsent(list: string): KeptJudgment[] {
  let kept: unknown;
  try {
    kept = JSON.parse(localStorage.getItem(list) ?? '[]');
  } catch {
    return [];
  }
  if (!Array.isArray(kept)) return [];
  const judgments: KeptJudgment[] = [];
  for (const entry of kept as Partial<KeptJudgment>[]) {
    const { assignmentId, key, body } = entry ?? {};
    if (typeof assignmentId !== 'string' || typeof key !== 'string' || !body || typeof body !== 'object')
      continue;
    judgments.push({ assignmentId, key, body });
  }
  return judgments;
}

/**
 * Writes a page's judgments into a list: `mine` replace the entries whose keys are in `own` (the
 * page's); the others (another tab's) stay. False when there is no storage, or it is full.
 */
export function writeUnsent(list: string, mine: KeptJudgment[], own: readonly string[]): boolean {
  try {
    let kept: unknown;
    try {
      kept = JSON.parse(localStorage.getItem(list) ?? '[]');
    } catch {
      kept = [];
    }
    const others = (Array.isArray(kept) ? (kept as KeptJudgment[]) : []).filter(
      (entry) => typeof entry?.key === 'string' && !own.includes(entry.key),
    );
    const all = [...others, ...mine];
    if (all.length > 0) localStorage.setItem(list, JSON.stringify(all));
    else localStorage.removeItem(list);
    return true;
  } catch {
    return false;
  }
}
