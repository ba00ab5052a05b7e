// @vitest-environment jsdom
// The rater's session (web/src/lib/rating-session.svelte.ts) against a fake server that keeps
// leases and judgments in memory, with its network switched off, held back or losing answers: the
// next comparison shows before the server answers, judgments go out one at a time in order, a failed
// send is retried with the same Idempotency-Key until stored once, unsent judgments are kept in
// localStorage and sent on the next visit, and U takes the last one back, unsent or stored.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type {
  AssignmentView,
  NextAssignmentResult,
  RaterProgress,
  RatingContext,
  SubmitBody,
  SubmitResult,
  UndoResult,
  User,
} from '$shared/index.js';

// api.ts reaches SvelteKit's navigation; the session needs only its error class and messages.
const { FakeApiError } = vi.hoisted(() => {
  class FakeApiError extends Error {
    constructor(
      readonly status: number,
      message: string,
    ) {
      super(message);
    }
    get isNetwork(): boolean {
      return this.status === 0;
    }
  }
  return { FakeApiError };
});
vi.mock('../../../web/src/lib/api.js', () => ({
  api: {},
  ApiError: FakeApiError,
  errorMessage: (error: unknown) => (error instanceof Error ? error.message : 'Something went wrong.'),
}));

const { RatingSession, RETRY_DELAYS_MS, UNDO_WINDOW_MS } =
  await import('../../../web/src/lib/rating-session.svelte.js');
const { ScreenTime } = await import('../../../web/src/lib/rating/screen-time.js');
const { session } = await import('../../../web/src/lib/session.svelte.js');

const PROJECT = '00000000-0000-4000-8000-000000000001';
const RATER = '00000000-0000-4000-8000-0000000000aa';
const STORE = `loom.unsent.${RATER}.${PROJECT}`;

function view(n: number): AssignmentView {
  return {
    id: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
    projectId: PROJECT,
    expiresAt: new Date(Date.now() + 30 * 60_000).toISOString(),
    messages: [{ role: 'user', content: `Question ${n}` }],
    left: { text: `Left ${n}` },
    right: { text: `Right ${n}` },
  };
}

interface Sent {
  assignmentId: string;
  key: string;
  body: SubmitBody;
}

/**
 * The server's side of rating, in memory: it hands comparisons in order, stores a judgment once per
 * Idempotency-Key (a retry gets the stored answer), refuses a second judgment of a lease, undoes.
 */
class FakeServer {
  /** Comparisons not handed out yet. */
  waiting: AssignmentView[];
  readonly handed = new Map<string, AssignmentView>();
  /** Stored judgments by Idempotency-Key. */
  readonly stored = new Map<string, Sent & { preferenceId: string }>();
  /** Every submission that reached the network, answered or not. */
  readonly sent: Sent[] = [];
  readonly skipped: { id: string; reason: string }[] = [];
  readonly excludes: string[][] = [];
  /** Submissions fail before reaching the server. */
  down = false;
  /** Submissions are stored but their answers are lost (this many times). */
  loseAnswers = 0;
  /** Submissions wait for this before they are answered. */
  held: Promise<void> | null = null;
  /** Leases withdrawn meanwhile: their submissions are refused. */
  readonly withdrawn = new Set<string>();
  private preferences = 0;

  constructor(count: number) {
    this.waiting = Array.from({ length: count }, (_, i) => view(i + 1));
  }

  ratingContext(projectId: string): Promise<RatingContext> {
    return Promise.resolve({
      projectId,
      name: 'Helpfulness',
      guidelines: '',
      labelSchema: {
        allowTie: true,
        allowBothBad: true,
        strengths: ['Much', 'A bit'],
        criteria: [],
        flags: [],
      },
    });
  }

  nextAssignment(projectId: string, exclude: string[] = []): Promise<NextAssignmentResult> {
    expect(projectId).toBe(PROJECT);
    this.excludes.push(exclude);
    return Promise.resolve({ assignment: this.hand() });
  }

  async submitJudgment(assignmentId: string, body: SubmitBody, key: string): Promise<SubmitResult> {
    this.sent.push({ assignmentId, key, body });
    if (this.held) await this.held;
    if (this.down) throw new FakeApiError(0, 'Network error: could not reach the server.');
    const again = this.stored.get(key);
    if (again) return { preferenceId: again.preferenceId, undoUntil: new Date().toISOString() };
    if (
      this.withdrawn.has(assignmentId) ||
      [...this.stored.values()].some((s) => s.assignmentId === assignmentId)
    )
      throw new FakeApiError(409, 'This assignment was withdrawn.');
    const { next, ...judgment } = body;
    const preferenceId = `pref-${++this.preferences}`;
    this.stored.set(key, { assignmentId, key, body: judgment as SubmitBody, preferenceId });
    if (this.loseAnswers > 0) {
      this.loseAnswers--;
      throw new FakeApiError(0, 'Network error: the connection was reset.');
    }
    const result: SubmitResult = {
      preferenceId,
      undoUntil: new Date(Date.now() + UNDO_WINDOW_MS).toISOString(),
    };
    if (next) result.next = this.hand();
    return result;
  }

  skipAssignment(assignmentId: string, reason: string): Promise<void> {
    this.skipped.push({ id: assignmentId, reason });
    return Promise.resolve();
  }

  undoJudgment(preferenceId: string): Promise<UndoResult> {
    const entry = [...this.stored.entries()].find(([, s]) => s.preferenceId === preferenceId);
    if (!entry) return Promise.reject(new FakeApiError(404, 'No such judgment.'));
    this.stored.delete(entry[0]);
    return Promise.resolve({ assignment: this.handed.get(entry[1].assignmentId)! });
  }

  progress(): Promise<RaterProgress> {
    const total = this.stored.size;
    return Promise.resolve({
      today: total,
      total,
      remaining: 100 - total,
      availableToMe: this.waiting.length,
    });
  }

  /** The stored judgments' assignments, in the order they were stored. */
  storedIds(): string[] {
    return [...this.stored.values()].map((s) => s.assignmentId);
  }

  private hand(): AssignmentView | null {
    const next = this.waiting.shift() ?? null;
    if (next) this.handed.set(next.id, next);
    return next;
  }
}

/** Lets every pending answer and the work it starts run (timers stay where they are). */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise<void>((done) => setImmediate(done));
}

type Session = InstanceType<typeof RatingSession>;

function open(server: FakeServer, screenTime?: InstanceType<typeof ScreenTime>) {
  const shown: { id: string; restored: unknown }[] = [];
  const rating: Session = new RatingSession({
    shown: (v, restore) => shown.push({ id: v.id, restored: restore ?? null }),
    server,
    ...(screenTime ? { screenTime } : {}),
  });
  return { rating, shown };
}

function kept(): string[] {
  return (JSON.parse(localStorage.getItem(STORE) ?? '[]') as Sent[]).map((entry) => entry.assignmentId);
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
  localStorage.clear();
  session.user = { id: RATER, role: 'RATER', name: 'Robin', email: 'robin@example.com' } as User;
});

afterEach(() => {
  vi.useRealTimers();
});

describe('RatingSession', () => {
  it('opens a project on its first comparison and holds the following one', async () => {
    const server = new FakeServer(5);
    const { rating, shown } = open(server);
    await rating.start(PROJECT);
    await settle();
    expect(rating.phase).toBe('rating');
    expect(rating.context?.name).toBe('Helpfulness');
    expect(rating.current?.id).toBe(view(1).id);
    expect(rating.ready).toBe(true);
    expect(shown).toEqual([{ id: view(1).id, restored: null }]);
    // The prefetch asked for one more, excluding the one on screen.
    expect(server.excludes).toEqual([[], [view(1).id]]);
    expect(server.waiting.map((v) => v.id)).toEqual([view(3).id, view(4).id, view(5).id]);
    expect(rating.progress).toEqual({ today: 0, total: 0, remaining: 100, availableToMe: 3 });
  });

  it('shows the held comparison at once and stores the judgment in the background', async () => {
    const server = new FakeServer(5);
    const { rating } = open(server);
    await rating.start(PROJECT);
    await settle();
    let release = () => {};
    server.held = new Promise<void>((done) => (release = done));

    rating.submit({ choice: 'LEFT', strength: 0 });
    // Synchronously: the next comparison is on screen, the judgment is on its way.
    expect(rating.current?.id).toBe(view(2).id);
    expect(rating.unsent).toBe(1);
    expect(rating.undoable()).toBe(true);
    await settle();
    expect(server.sent).toHaveLength(1);
    expect(server.stored.size).toBe(0);

    release();
    await settle();
    expect(server.storedIds()).toEqual([view(1).id]);
    expect(rating.unsent).toBe(0);
    // Counted locally: one more today, one fewer needed.
    expect(rating.progress?.today).toBe(1);
    expect(rating.progress?.remaining).toBe(99);
    // Nothing else was held, so the submission asked for the following comparison, excluding the
    // leases the page holds (on screen, then the judged one), and its answer brought it.
    expect(server.sent[0]!.body.next).toEqual({ exclude: [view(2).id, view(1).id] });
    rating.submit({ choice: 'TIE' });
    expect(rating.current?.id).toBe(view(3).id);
  });

  it('sends queued judgments one at a time, in order, each with its own key, the time on screen included', async () => {
    let clock = 1000;
    const server = new FakeServer(6);
    const { rating } = open(
      server,
      new ScreenTime(
        () => clock,
        () => false,
      ),
    );
    await rating.start(PROJECT);
    await settle();
    let release = () => {};
    server.held = new Promise<void>((done) => (release = done));

    clock += 2500;
    rating.submit({ choice: 'LEFT', strength: 1 });
    clock += 700;
    rating.submit({ choice: 'RIGHT', strength: 0, rationale: 'clearer' });
    await settle();
    // The second waits for the first's answer (which brings the comparison to show next).
    expect(server.sent.map((s) => s.assignmentId)).toEqual([view(1).id]);
    expect(rating.phase).toBe('loading');
    expect(rating.unsent).toBe(2);

    release();
    await settle();
    expect(server.sent.map((s) => s.assignmentId)).toEqual([view(1).id, view(2).id]);
    expect(server.storedIds()).toEqual([view(1).id, view(2).id]);
    expect(new Set(server.sent.map((s) => s.key)).size).toBe(2);
    expect([...server.stored.values()].map((s) => s.body)).toEqual([
      { choice: 'LEFT', strength: 1, timeSpentMs: 2500 },
      { choice: 'RIGHT', strength: 0, rationale: 'clearer', timeSpentMs: 700 },
    ]);
    expect(rating.current?.id).toBe(view(3).id);
    expect(rating.unsent).toBe(0);
  });

  it('retries a failed send with the same key and body, tells the rater after a few, and stores it once', async () => {
    const server = new FakeServer(5);
    const { rating } = open(server);
    await rating.start(PROJECT);
    await settle();
    server.down = true;
    rating.submit({ choice: 'BOTH_BAD' });
    await settle();
    expect(server.sent).toHaveLength(1);
    expect(rating.trouble).toBeNull();

    // The pauses grow; the third failure is told.
    await vi.advanceTimersByTimeAsync(RETRY_DELAYS_MS[0]!);
    await settle();
    expect(server.sent).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(RETRY_DELAYS_MS[1]!);
    await settle();
    expect(server.sent).toHaveLength(3);
    expect(rating.trouble).toMatch(
      /^1 judgment is not saved yet \(Network error: could not reach the server\.\)/,
    );
    // Nothing goes out before the next pause is over.
    await vi.advanceTimersByTimeAsync(RETRY_DELAYS_MS[2]! - 1);
    expect(server.sent).toHaveLength(3);

    // The network is back: "Send now" does not wait for the pause.
    server.down = false;
    rating.retryNow();
    await settle();
    expect(server.sent).toHaveLength(4);
    expect(server.storedIds()).toEqual([view(1).id]);
    expect(rating.trouble).toBeNull();
    expect(rating.unsent).toBe(0);
    const { key, body } = server.sent[0]!;
    for (const attempt of server.sent) {
      expect(attempt.key).toBe(key);
      expect({ ...attempt.body, next: undefined }).toEqual({ ...body, next: undefined });
    }
  });

  it('sends again a judgment whose answer was lost, and the server answers it from its store', async () => {
    const server = new FakeServer(5);
    const { rating } = open(server);
    await rating.start(PROJECT);
    await settle();
    server.loseAnswers = 1;
    rating.submit({ choice: 'LEFT', strength: 0 });
    await settle();
    expect(server.stored.size).toBe(1);
    expect(rating.unsent).toBe(1);
    await vi.advanceTimersByTimeAsync(RETRY_DELAYS_MS[0]!);
    await settle();
    expect(server.sent).toHaveLength(2);
    expect(server.sent[1]!.key).toBe(server.sent[0]!.key);
    expect(server.storedIds()).toEqual([view(1).id]);
    expect(rating.unsent).toBe(0);
    expect(rating.message).toBeNull();
  });

  it('tells a refused judgment and leaves the comparison on screen where it is', async () => {
    const server = new FakeServer(5);
    const { rating } = open(server);
    await rating.start(PROJECT);
    await settle();
    server.withdrawn.add(view(1).id);
    rating.submit({ choice: 'TIE' });
    const onScreen = rating.current?.id;
    await settle();
    expect(rating.message).toEqual({
      kind: 'error',
      text: 'Your judgment of an earlier comparison was not stored: This assignment was withdrawn.',
    });
    expect(rating.current?.id).toBe(onScreen);
    expect(rating.unsent).toBe(0);
    expect(rating.last).toBeNull();
    expect(server.stored.size).toBe(0);
  });

  it('keeps unsent judgments in localStorage until stored, and sends them first on the next visit', async () => {
    const server = new FakeServer(8);
    const first = open(server);
    await first.rating.start(PROJECT);
    await settle();
    server.down = true;
    first.rating.submit({ choice: 'LEFT', strength: 0 });
    first.rating.submit({ choice: 'RIGHT', strength: 1 });
    await settle();
    expect(kept()).toEqual([view(1).id, view(2).id]);
    const keys = (JSON.parse(localStorage.getItem(STORE)!) as Sent[]).map((entry) => entry.key);

    // The page goes away; the next visit takes them over and sends them before anything else.
    first.rating.close();
    server.down = false;
    const second = open(server);
    await second.rating.start(PROJECT);
    await settle();
    expect(server.storedIds()).toEqual([view(1).id, view(2).id]);
    expect([...server.stored.keys()]).toEqual(keys);
    expect(second.rating.message).toEqual({
      kind: 'success',
      text: '2 judgments from your last visit were sent.',
    });
    expect(localStorage.getItem(STORE)).toBeNull();
    expect(second.rating.current).not.toBeNull();

    // A third visit has nothing to send.
    const sentBefore = server.sent.length;
    const third = open(server);
    await third.rating.start(PROJECT);
    await settle();
    expect(server.sent).toHaveLength(sentBefore);
    expect(third.rating.message).toBeNull();
  });

  it('tells the rater when a judgment of an earlier visit is refused, with the reason', async () => {
    const server = new FakeServer(6);
    const first = open(server);
    await first.rating.start(PROJECT);
    await settle();
    server.down = true;
    first.rating.submit({ choice: 'LEFT', strength: 0 });
    await settle();
    first.rating.close();
    server.down = false;
    server.withdrawn.add(view(1).id);
    const second = open(server);
    await second.rating.start(PROJECT);
    await settle();
    expect(second.rating.message).toEqual({
      kind: 'error',
      text: '1 judgment from your last visit was not stored: This assignment was withdrawn.',
    });
    expect(localStorage.getItem(STORE)).toBeNull();
  });

  it('takes back an unsent judgment without sending it, its choice restored', async () => {
    const server = new FakeServer(5);
    const { rating, shown } = open(server);
    await rating.start(PROJECT);
    await settle();
    server.down = true;
    rating.submit({ choice: 'LEFT', strength: 0 });
    await settle();
    rating.submit({ choice: 'RIGHT', strength: 1, criteria: { honest: 'TIE' } });
    expect(kept()).toEqual([view(1).id, view(2).id]);

    await rating.undo();
    expect(rating.current?.id).toBe(view(2).id);
    expect(shown.at(-1)).toEqual({
      id: view(2).id,
      restored: { choice: 'RIGHT', strength: 1, criteria: { honest: 'TIE' } },
    });
    expect(rating.message?.text).toBe('Your last judgment is taken back. Change it and submit again.');
    expect(rating.unsent).toBe(1);
    expect(kept()).toEqual([view(1).id]);

    server.down = false;
    rating.retryNow();
    await settle();
    expect(server.storedIds()).toEqual([view(1).id]);
    expect(server.sent.every((s) => s.assignmentId === view(1).id)).toBe(true);
  });

  it('takes back a stored judgment on the server within the window; the comparison on screen comes right after', async () => {
    const server = new FakeServer(6);
    const { rating, shown } = open(server);
    await rating.start(PROJECT);
    await settle();
    rating.submit({ choice: 'LEFT', strength: 0 });
    await settle();
    expect(server.storedIds()).toEqual([view(1).id]);
    const following = rating.current!.id;
    expect(rating.undoSecondsLeft()).toBe(60);
    vi.advanceTimersByTime(10_500);
    expect(rating.undoSecondsLeft()).toBe(50);

    await rating.undo();
    expect(server.stored.size).toBe(0);
    expect(rating.current?.id).toBe(view(1).id);
    expect(shown.at(-1)).toEqual({ id: view(1).id, restored: { choice: 'LEFT', strength: 0 } });
    expect(rating.undoable()).toBe(false);
    rating.submit({ choice: 'RIGHT', strength: 1 });
    expect(rating.current?.id).toBe(following);
    await settle();
    expect([...server.stored.values()].map((s) => [s.assignmentId, s.body.choice])).toEqual([
      [view(1).id, 'RIGHT'],
    ]);
  });

  it('waits for a judgment on its way before taking it back', async () => {
    const server = new FakeServer(6);
    const { rating } = open(server);
    await rating.start(PROJECT);
    await settle();
    let release = () => {};
    server.held = new Promise<void>((done) => (release = done));
    rating.submit({ choice: 'TIE' });
    await settle();
    const undone = rating.undo();
    expect(rating.undoing).toBe(true);
    expect(rating.ready).toBe(false);
    release();
    await undone;
    expect(server.stored.size).toBe(0);
    expect(rating.current?.id).toBe(view(1).id);
    expect(rating.undoing).toBe(false);
  });

  it('has nothing to undo once the window has passed', async () => {
    const server = new FakeServer(5);
    const { rating } = open(server);
    await rating.start(PROJECT);
    await settle();
    rating.submit({ choice: 'TIE' });
    await settle();
    vi.advanceTimersByTime(UNDO_WINDOW_MS + 1);
    expect(rating.undoable()).toBe(false);
    expect(rating.undoSecondsLeft()).toBe(0);
    await rating.undo();
    expect(rating.message).toEqual({ kind: 'info', text: 'Nothing to undo.' });
    expect(server.stored.size).toBe(1);
  });

  it('skips the comparison on screen with its reason and shows the next', async () => {
    const server = new FakeServer(5);
    const { rating } = open(server);
    await rating.start(PROJECT);
    await settle();
    await rating.skip('The prompt is unclear or broken');
    expect(server.skipped).toEqual([{ id: view(1).id, reason: 'The prompt is unclear or broken' }]);
    expect(rating.current?.id).toBe(view(2).id);
    expect(rating.message).toEqual({ kind: 'info', text: 'Skipped.' });
  });

  it('says done when nothing is left, once the last judgment is sent', async () => {
    const server = new FakeServer(1);
    const { rating } = open(server);
    await rating.start(PROJECT);
    await settle();
    rating.submit({ choice: 'TIE' });
    await settle();
    expect(rating.phase).toBe('done');
    expect(rating.current).toBeNull();
    expect(server.storedIds()).toEqual([view(1).id]);
  });
});

describe('ScreenTime', () => {
  it('counts the time on screen without the time the page was hidden', () => {
    let clock = 0;
    let hidden = false;
    const time = new ScreenTime(
      () => clock,
      () => hidden,
    );
    time.restart();
    clock = 1000;
    hidden = true;
    time.visibilityChanged();
    clock = 5000;
    expect(time.elapsedMs()).toBe(1000);
    hidden = false;
    time.visibilityChanged();
    clock = 5400;
    expect(time.elapsedMs()).toBe(1400);
    time.restart();
    expect(time.elapsedMs()).toBe(1);
  });

  it('starts counting when the page shows, for a comparison shown while it was hidden', () => {
    let clock = 100;
    let hidden = true;
    const time = new ScreenTime(
      () => clock,
      () => hidden,
    );
    time.restart();
    clock = 3100;
    hidden = false;
    time.visibilityChanged();
    clock = 3350;
    expect(time.elapsedMs()).toBe(250);
  });
});
