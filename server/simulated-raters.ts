// Simulated raters: accounts marked `simulated` that judge through the same HTTP API as people,
// by a hidden utility (the answer key: correct first, then concise) with configurable noise.
import { randomBytes, randomUUID } from 'node:crypto';
import type { PrismaClient } from '../core/db/client.js';
import { demoUtility } from '../core/demo.js';
import { seededRandom } from '../core/services/comparisons.js';
import { hashPassword } from '../core/services/passwords.js';

export interface SimulatedAccount {
  email: string;
  password: string;
}

/** Creates (or re-keys) `count` simulated raters and makes them members of the project. */
export async function ensureSimulatedRaters(
  prisma: PrismaClient,
  projectId: string,
  count: number,
): Promise<SimulatedAccount[]> {
  const password = randomBytes(18).toString('base64url');
  const passwordHash = await hashPassword(password);
  const accounts: SimulatedAccount[] = [];
  for (let i = 1; i <= count; i++) {
    const email = `simulated-${i}@simulated.loom.invalid`;
    const user = await prisma.user.upsert({
      where: { email },
      create: {
        email,
        name: `Simulated rater ${i}`,
        role: 'RATER',
        simulated: true,
        credential: { create: { passwordHash } },
      },
      update: {
        credential: { upsert: { create: { passwordHash }, update: { passwordHash } } },
        disabledAt: null,
      },
    });
    if (!user.simulated) throw new Error(`${email} exists and is not a simulated account.`);
    await prisma.projectMember.createMany({ data: [{ projectId, userId: user.id }], skipDuplicates: true });
    accounts.push({ email, password });
  }
  return accounts;
}

/** The answer key of a project's prompts (prompt text → answer), from their metadata. */
export async function answerKey(prisma: PrismaClient, projectId: string): Promise<Map<string, string>> {
  const prompts = await prisma.prompt.findMany({
    where: { projectId },
    select: { messages: true, metadata: true },
  });
  const key = new Map<string, string>();
  for (const prompt of prompts) {
    const answer = (prompt.metadata as { answer?: unknown }).answer;
    const messages = prompt.messages as { role: string; content: string }[];
    const text = [...messages].reverse().find((m) => m.role === 'user')?.content;
    if (typeof answer === 'string' && text) key.set(text, answer);
  }
  return key;
}

export type ShownChoice = 'LEFT' | 'RIGHT' | 'TIE' | 'BOTH_BAD';

/** A judgment by the hidden utility; with probability `noise` a random side instead. */
export function simulatedJudgment(
  left: string,
  right: string,
  answer: string,
  noise: number,
  random: () => number,
): { choice: ShownChoice; strength?: number } {
  if (random() < noise) return { choice: random() < 0.5 ? 'LEFT' : 'RIGHT', strength: 3 };
  const l = demoUtility(left, answer);
  const r = demoUtility(right, answer);
  // Both wrong: the shorter is still closer to a bare answer (the guidelines say so too).
  if (l === r) return { choice: 'TIE' };
  const gap = Math.abs(l - r);
  const strength = gap >= 50 ? 0 : gap >= 10 ? 1 : gap >= 3 ? 2 : 3;
  return { choice: l > r ? 'LEFT' : 'RIGHT', strength };
}

export interface SimulationOptions {
  origin: string;
  projectId: string;
  accounts: SimulatedAccount[];
  answers: Map<string, string>;
  noise: number;
  /** Stop after this many judgments in all (or when the queue is empty). */
  judgments: number;
  seed?: number;
  onJudgment?: (done: number) => void;
}

async function call(
  origin: string,
  method: string,
  url: string,
  headers: Record<string, string>,
  body?: unknown,
) {
  const response = await fetch(`${origin}${url}`, {
    method,
    headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return {
    status: response.status,
    json: (await response.json().catch(() => ({}))) as Record<string, unknown>,
    headers: response.headers,
  };
}

/** Signs the accounts in and lets them judge concurrently until done; returns the counts. */
export async function runSimulatedRaters(
  options: SimulationOptions,
): Promise<{ judged: number; errors: number; empty: boolean }> {
  const random = seededRandom(options.seed ?? 1);
  let judged = 0;
  let errors = 0;
  let empty = false;
  const sessions = await Promise.all(
    options.accounts.map(async (account) => {
      const login = await call(options.origin, 'POST', '/api/auth/login', {}, account);
      if (login.status !== 200)
        throw new Error(`Simulated rater ${account.email} could not sign in (${login.status}).`);
      const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
      return { cookie, 'x-csrf-token': String(login.json.csrfToken) };
    }),
  );
  await Promise.all(
    sessions.map(async (headers) => {
      while (judged < options.judgments) {
        const next = await call(
          options.origin,
          'POST',
          `/api/projects/${options.projectId}/leases/next`,
          headers,
          {},
        );
        if (next.status !== 200) {
          errors++;
          return;
        }
        const assignment = next.json.assignment as {
          id: string;
          messages: { role: string; content: string }[];
          left: { text: string };
          right: { text: string };
        } | null;
        if (!assignment) {
          empty = true;
          return;
        }
        const prompt = [...assignment.messages].reverse().find((m) => m.role === 'user')?.content ?? '';
        const answer = options.answers.get(prompt) ?? '';
        const judgment = simulatedJudgment(
          assignment.left.text,
          assignment.right.text,
          answer,
          options.noise,
          random,
        );
        const submit = await call(
          options.origin,
          'POST',
          `/api/leases/${assignment.id}/submit`,
          { ...headers, 'idempotency-key': randomUUID() },
          { ...judgment, timeSpentMs: 500 + Math.floor(random() * 4000) },
        );
        if (submit.status === 201) {
          judged++;
          options.onJudgment?.(judged);
        } else errors++;
      }
    }),
  );
  return { judged, errors, empty };
}
