// The rater's session in one project, apart from the screen that shows it: the comparison on
// screen, the ones held for later (prefetched, or brought by a submission's answer), the judgments on
// their way to the server and the one U can take back.
//
// A judgment is queued and the held comparison shown at once; the queue sends in the background, in
// order, one request per judgment (its answer brings the following comparison as `next`), each with
// its own Idempotency-Key, which every retry reuses, so the server stores it exactly once. A send the
// network or the server fails is retried with growing pauses, and after a few the rater is told (a
// notice that stays until everything is stored, with a button to send now); nothing is dropped. A
// judgment the server refuses (409: withdrawn, already judged; 404; 400) is told to the rater and
// leaves the comparison on screen where it is.
//
// Unsent judgments are also kept in this browser's localStorage (rating/unsent-judgments.ts), under
// the signed-in rater and the project, from when they are queued until the server stored or refused
// them: a page reloaded or closed anyway (or a browser that crashed) sends them first on the next
// visit, with the same keys (a judgment the server stored already is answered from its store, not
// stored twice), and tells the rater.
//
// It also keeps the rater's numbers (progress: counted locally after each stored judgment, asked from
// the server now and then) and the time each comparison was on screen, which its judgment carries.
import type {
  AssignmentView,
  RaterProgress,
  RatingContext,
  SubmitBody,
  SubmitResult,
} from '$shared/index.js';
import { api, ApiError, errorMessage } from './api.js';
import { newIdempotencyKey, type Judgment } from './rating.js';
import { reorderRanking } from './rating/ranking.js';
import { ScreenTime } from './rating/screen-time.js';
import {
  isRatersList,
  readUnsent,
  unsentList,
  writeUnsent,
  type KeptJudgment,
} from './rating/unsent-judgments.js';
import { session } from './session.svelte.js';

/** How long U can take a stored judgment back (the server's window, counted from the first send). */
export const UNDO_WINDOW_MS = 60_000;
/** Pauses before each retry of a failed send; the last one repeats until the send goes through. */
export const RETRY_DELAYS_MS = [300, 1000, 2500, 5000, 10_000, 15_000];
/** Failed sends of one judgment before the rater is told. */
const TROUBLE_AFTER = 3;
/** A held comparison whose lease ends sooner than this is not shown (and the server hands it again). */
const FRESH_MS = 5000;
/** After a failed prefetch, the next try waits this long. */
const PREFETCH_RETRY_MS = 5000;
/** The server takes at most this many ids in `exclude`. */
const MAX_EXCLUDE = 5;
/** Between stored judgments the progress counts locally and asks the server at most this often. */
export const PROGRESS_REFRESH_MS = 15_000;

export type Phase = 'loading' | 'rating' | 'done' | 'error';

export interface RateMessage {
  kind: 'error' | 'info' | 'success';
  text: string;
}

export { forgetUnsentJudgments } from './rating/unsent-judgments.js';

/** A judgment waiting for the server's answer. */
interface Outgoing extends KeptJudgment {
  /** Its list in localStorage (the rater and project it was made for). */
  store: string;
  /** Left unsent by an earlier visit. */
  restored: boolean;
  /** When it was first sent (the server's undo window starts at or after it). */
  firstSentAt: number | null;
  failures: number;
}

/** The last judgment, which U can take back: while it is unsent (`outgoing`) or stored. */
export interface LastJudgment {
  view: AssignmentView;
  judgment: Judgment;
  /** Until when (this browser's clock) U works. */
  deadline: number;
  outgoing: Outgoing | null;
  preferenceId: string | null;
}

/** The API calls a session makes (api.ts's; tests give a fake server). */
export type RatingServer = Pick<
  typeof api,
  'ratingContext' | 'nextAssignment' | 'submitJudgment' | 'skipAssignment' | 'undoJudgment' | 'progress'
>;

export interface SessionOptions {
  /** A comparison comes on screen; `restore` is the judgment to pre-select (after an undo). */
  shown(view: AssignmentView, restore?: Judgment): void;
  /** The API; api.ts by default. */
  server?: RatingServer;
  /** Time on screen; by default performance.now() and the page's visibility. */
  screenTime?: ScreenTime;
}

/**
 * A ranking judgment made on `from`, for the same lease shown as `to` (after an undo the server
 * answers with the lease again): its ranks follow the responses if they come back in another order,
 * and are dropped if they cannot. A pair's judgment is unchanged.
 */
function inOrderShown(judgment: Judgment, from: AssignmentView, to: AssignmentView): Judgment {
  if (!judgment.ranking || !from.ranked || !to.ranked) return judgment;
  return { ...judgment, ranking: reorderRanking(judgment.ranking, from.ranked, to.ranked) ?? [] };
}

export class RatingSession {
  context = $state<RatingContext | null>(null);
  phase = $state<Phase>('loading');
  loadError = $state<string | null>(null);
  /** The comparison on screen. */
  current = $state<AssignmentView | null>(null);
  message = $state<RateMessage | null>(null);
  /** Judgments not stored yet (queued or on their way). */
  unsent = $state(0);
  /** Why judgments could not be stored so far; shown until every one is stored. */
  trouble = $state<string | null>(null);
  last = $state.raw<LastJudgment | null>(null);
  undoing = $state(false);
  /** The rater's numbers in this project; null until the server answered. */
  progress = $state<RaterProgress | null>(null);
  /** A comparison is on screen and takes a judgment, a skip or the keys that make one. */
  readonly ready = $derived(this.current !== null && this.phase === 'rating' && !this.undoing);
  /** How long the comparison on screen has been visible. */
  readonly screenTime: ScreenTime;

  private readonly shown: SessionOptions['shown'];
  private readonly server: RatingServer;
  private projectId = '';
  /** Changes with each start(): answers for an earlier start are not shown. */
  private generation = 0;
  private closed = false;
  /** Held comparisons, shown next. */
  private upcoming: AssignmentView[] = [];
  /** Judgments to send, in order; the first one may be on its way. */
  private queue: Outgoing[] = [];
  private sendingItem: Outgoing | null = null;
  private sending: Promise<void> | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private fetching: Promise<void> | null = null;
  private fetchRetryAt = 0;
  private troubleReason: string | null = null;
  /** Idempotency keys of the judgments this page queued or took over (others' stay in localStorage). */
  private own: string[] = [];
  /** The localStorage lists this page wrote last. */
  private persisted: string[] = [];
  /** Judgments of an earlier visit stored, and why others were refused, told when all are answered. */
  private restoredSent = 0;
  private restoredRefused: string[] = [];
  /** The server had nothing beyond what is held when it was last asked. */
  private exhausted = false;
  /** When the progress was last asked for. */
  private progressAt = 0;

  constructor({ shown, server = api, screenTime = new ScreenTime() }: SessionOptions) {
    this.shown = shown;
    this.server = server;
    this.screenTime = screenTime;
  }

  /** Opens a project: its context and the first comparison. Unsent judgments keep going out. */
  async start(projectId: string): Promise<void> {
    const generation = ++this.generation;
    this.projectId = projectId;
    this.closed = false;
    this.phase = 'loading';
    this.loadError = null;
    this.context = null;
    this.current = null;
    this.upcoming = [];
    this.last = null;
    this.exhausted = false;
    this.fetchRetryAt = 0;
    this.restoreUnsent(projectId);
    try {
      const [context, first] = await Promise.all([
        this.server.ratingContext(projectId),
        this.server.nextAssignment(projectId, this.heldIds()),
      ]);
      if (generation !== this.generation) return;
      this.context = context;
      if (first.assignment) this.show(first.assignment);
      else {
        this.exhausted = true;
        this.phase = 'done';
      }
    } catch (error) {
      if (generation !== this.generation) return;
      this.loadError = errorMessage(error);
      this.phase = 'error';
    } finally {
      // Judgments an earlier visit left unsent go out first (they are first in the queue).
      if (generation === this.generation) this.pump();
    }
    void this.refreshProgress();
  }

  /** Asks the server for the rater's numbers (the progress line is a convenience: failures are quiet). */
  async refreshProgress(): Promise<void> {
    try {
      this.progressAt = Date.now();
      this.progress = await this.server.progress(this.projectId);
    } catch {
      // Rating goes on without it.
    }
  }

  /** The page is left: no more prefetching; judgments still unsent go on being sent. */
  close(): void {
    this.closed = true;
    this.generation++;
  }

  /**
   * Sends the judgment of the comparison on screen (with the time it was visible), in the
   * background, and shows the next one now.
   */
  submit(judgment: Judgment): void {
    const timeSpentMs = this.screenTime.elapsedMs();
    const view = this.current;
    if (!view || this.phase !== 'rating' || this.undoing) return;
    const user = session.user;
    if (!user) return;
    const item: Outgoing = {
      assignmentId: view.id,
      key: newIdempotencyKey(),
      body: { ...judgment, timeSpentMs },
      store: unsentList(user.id, this.projectId),
      restored: false,
      firstSentAt: null,
      failures: 0,
    };
    this.own.push(item.key);
    this.queue.push(item);
    this.queueChanged();
    this.last = { view, judgment, deadline: Date.now() + UNDO_WINDOW_MS, outgoing: item, preferenceId: null };
    this.message = null;
    this.advance();
    this.pump();
  }

  /** Skips the comparison on screen (the server is asked first: a skip is rare and needs no speed). */
  async skip(reason: string): Promise<void> {
    const view = this.current;
    if (!view) return;
    try {
      await this.server.skipAssignment(view.id, reason);
      this.message = { kind: 'info', text: 'Skipped.' };
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 409)) {
        this.message = { kind: 'error', text: errorMessage(error) };
        return;
      }
      this.message = { kind: 'info', text: `${error.message} Here is the next one.` };
    }
    void this.refreshProgress();
    if (this.current === view) this.advance();
  }

  /**
   * Takes the last judgment back and shows its comparison again, with the judgment pre-selected. An
   * unsent one is taken out of the queue; one on its way is waited for, then undone on the server.
   */
  async undo(): Promise<void> {
    if (this.undoing) return;
    if (!this.undoable()) {
      this.last = null;
      this.message = { kind: 'info', text: 'Nothing to undo.' };
      return;
    }
    this.undoing = true;
    try {
      const waitFor = this.last?.outgoing;
      if (waitFor && waitFor === this.sendingItem && this.sending) await this.sending;
      const last = this.last;
      // Refused meanwhile: the message says so already.
      if (!last) return;
      if (last.outgoing) {
        this.queue = this.queue.filter((item) => item !== last.outgoing);
        this.queueChanged();
        this.restore(last.view, last.judgment);
        return;
      }
      if (last.deadline <= Date.now() || !last.preferenceId) {
        this.last = null;
        this.message = { kind: 'info', text: 'Nothing to undo.' };
        return;
      }
      const result = await this.server.undoJudgment(last.preferenceId);
      this.restore(result.assignment, inOrderShown(last.judgment, last.view, result.assignment));
      void this.refreshProgress();
    } catch (error) {
      this.last = null;
      this.message = { kind: 'error', text: errorMessage(error) };
    } finally {
      this.undoing = false;
    }
  }

  /** Whether U would take something back now. */
  undoable(now = Date.now()): boolean {
    const last = this.last;
    return last !== null && (last.outgoing !== null || last.deadline > now);
  }

  /** Whole seconds left to take the last judgment back (0: none, or no countdown). */
  undoSecondsLeft(now = Date.now()): number {
    return this.last ? Math.max(0, Math.ceil((this.last.deadline - now) / 1000)) : 0;
  }

  /** Sends the unsent judgments now (the trouble notice's button), and asks again for a comparison. */
  retryNow(): void {
    if (this.retryTimer) {
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
    }
    this.fetchRetryAt = 0;
    if (this.phase === 'error' && this.context) {
      this.phase = 'loading';
      this.loadError = null;
    }
    this.pump();
    this.refill();
  }

  /** Ids of the leases this page holds (so the server does not hand them again), at most 5. */
  private heldIds(): string[] {
    const ids = [
      ...(this.current ? [this.current.id] : []),
      ...this.upcoming.map((view) => view.id),
      ...this.queue.map((item) => item.assignmentId).reverse(),
    ];
    return ids.filter((id, index) => ids.indexOf(id) === index).slice(0, MAX_EXCLUDE);
  }

  private show(view: AssignmentView, restore?: Judgment): void {
    this.current = view;
    this.phase = 'rating';
    this.screenTime.restart();
    this.shown(view, restore);
    this.refill();
  }

  private restore(view: AssignmentView, judgment: Judgment): void {
    // The comparison on screen stays leased to us and comes right after.
    if (this.current && this.current.id !== view.id) this.upcoming = [this.current, ...this.upcoming];
    this.last = null;
    this.show(view, judgment);
    this.message = { kind: 'info', text: 'Your last judgment is taken back. Change it and submit again.' };
  }

  /** A held comparison that is still fresh, taken off the list. */
  private take(): AssignmentView | undefined {
    const queued = this.queue.map((item) => item.assignmentId);
    let view: AssignmentView | undefined;
    while ((view = this.upcoming.shift())) {
      if (!queued.includes(view.id) && Date.parse(view.expiresAt) > Date.now() + FRESH_MS) return view;
    }
    return undefined;
  }

  /** The next comparison on screen: a held one at once, else the one on its way (or done). */
  private advance(): void {
    const view = this.take();
    if (view) {
      this.show(view);
      return;
    }
    this.current = null;
    this.phase = 'loading';
    this.refill();
  }

  /** Keeps one comparison held ahead; shows one when the screen waits for it. */
  private refill(): void {
    if (this.closed) return;
    if (this.current === null && this.phase === 'loading') {
      if (!this.context) return; // start() is loading
      const view = this.take();
      if (view) {
        this.show(view);
        return;
      }
      // An answer that brings one is on its way: the first judgment in the queue asks for it.
      if (this.fetching || this.queue.length > 0) return;
      if (this.exhausted) this.phase = 'done';
      else this.fetch();
      return;
    }
    if (
      this.current &&
      this.upcoming.length === 0 &&
      !this.fetching &&
      this.queue.length === 0 &&
      !this.exhausted &&
      Date.now() >= this.fetchRetryAt
    ) {
      this.fetch();
    }
  }

  private fetch(): void {
    const generation = this.generation;
    this.fetching = this.server
      .nextAssignment(this.projectId, this.heldIds())
      .then((result) => {
        if (generation === this.generation) this.receive(result.assignment);
      })
      .catch((error: unknown) => {
        if (generation !== this.generation) return;
        if (this.current === null && this.phase === 'loading') {
          this.loadError = `Could not load the next comparison: ${errorMessage(error)}`;
          this.phase = 'error';
        } else {
          // Fetched again a little later (or when needed).
          this.fetchRetryAt = Date.now() + PREFETCH_RETRY_MS;
          setTimeout(() => this.refill(), PREFETCH_RETRY_MS);
        }
      })
      .finally(() => {
        this.fetching = null;
        if (generation === this.generation) this.refill();
      });
  }

  /** A comparison the server handed (or none left for me). */
  private receive(view: AssignmentView | null): void {
    if (!view) {
      this.exhausted = true;
      return;
    }
    this.exhausted = false;
    if (view.projectId !== this.projectId) return;
    const known =
      view.id === this.current?.id ||
      this.upcoming.some((held) => held.id === view.id) ||
      this.queue.some((item) => item.assignmentId === view.id);
    if (!known) {
      this.upcoming = [...this.upcoming, view];
      return;
    }
    // One this page holds already (more than `exclude` could list): ask again later, not at once.
    this.fetchRetryAt = Date.now() + PREFETCH_RETRY_MS;
    setTimeout(() => this.refill(), PREFETCH_RETRY_MS);
  }

  /** Sends the first queued judgment, if none is on its way. */
  private pump(): void {
    if (this.sending || this.retryTimer || this.queue.length === 0) return;
    const item = this.queue[0]!;
    const generation = this.generation;
    // Its answer brings the comparison after the held ones, unless one is held or being fetched.
    const askNext = !this.closed && this.upcoming.length === 0 && !this.fetching;
    const body: SubmitBody = askNext ? { ...item.body, next: { exclude: this.heldIds() } } : item.body;
    item.firstSentAt ??= Date.now();
    this.sendingItem = item;
    this.sending = this.server
      .submitJudgment(item.assignmentId, body, item.key)
      .then(
        (result) => this.onStored(item, result, askNext && generation === this.generation),
        (error: unknown) => this.onFailed(item, error),
      )
      .finally(() => {
        this.sending = null;
        this.sendingItem = null;
        this.pump();
        this.refill();
      });
  }

  private onStored(item: Outgoing, result: SubmitResult, asked: boolean): void {
    this.queue = this.queue.filter((queued) => queued !== item);
    this.queueChanged();
    if (asked) this.receive(result.next ?? null);
    if (item.restored) {
      this.restoredSent++;
      this.tellRestored();
    }
    if (this.last?.outgoing === item) {
      this.last = {
        ...this.last,
        outgoing: null,
        preferenceId: result.preferenceId,
        deadline: (item.firstSentAt ?? Date.now()) + UNDO_WINDOW_MS,
      };
    }
    this.countStored();
  }

  /**
   * After a stored judgment: one more today, one fewer needed; the server's exact numbers now and
   * then (they also count others).
   */
  private countStored(): void {
    const progress = this.progress;
    if (progress) {
      this.progress = {
        ...progress,
        today: progress.today + 1,
        total: progress.total + 1,
        remaining: Math.max(0, progress.remaining - 1),
        availableToMe: Math.max(0, progress.availableToMe - 1),
      };
    }
    if (!progress || Date.now() - this.progressAt >= PROGRESS_REFRESH_MS) void this.refreshProgress();
  }

  private onFailed(item: Outgoing, error: unknown): void {
    // The network, the server, the rate limit, or a session that ended (signing in again lets the
    // same request through): kept and sent again.
    const retryable =
      error instanceof ApiError &&
      (error.isNetwork || error.status >= 500 || error.status === 429 || error.status === 401);
    if (retryable) {
      item.failures++;
      const delay = RETRY_DELAYS_MS[Math.min(item.failures, RETRY_DELAYS_MS.length) - 1]!;
      if (item.failures >= TROUBLE_AFTER) {
        this.troubleReason = errorMessage(error);
        this.queueChanged();
      }
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        this.pump();
      }, delay);
      return;
    }
    // Refused for good (withdrawn, already judged, no such lease, invalid): nothing to retry, and
    // what is on screen stays.
    if (!this.queue.includes(item)) return;
    this.queue = this.queue.filter((queued) => queued !== item);
    this.queueChanged();
    if (this.last?.outgoing === item) this.last = null;
    if (item.restored) {
      this.restoredRefused.push(errorMessage(error));
      this.tellRestored();
    } else {
      this.message = {
        kind: 'error',
        text: `Your judgment of an earlier comparison was not stored: ${errorMessage(error)}`,
      };
    }
    void this.refreshProgress();
  }

  /** Takes over the judgments an earlier visit left unsent in this project, first in the queue. */
  private restoreUnsent(projectId: string): void {
    const user = session.user;
    if (!user) return;
    const store = unsentList(user.id, projectId);
    const restored: Outgoing[] = [];
    for (const { assignmentId, key, body } of readUnsent(store)) {
      if (this.own.includes(key)) continue;
      this.own.push(key);
      restored.push({ assignmentId, key, body, store, restored: true, firstSentAt: null, failures: 0 });
    }
    if (restored.length === 0) return;
    this.queue = [...restored, ...this.queue];
    this.queueChanged();
  }

  /** Once every judgment of an earlier visit is answered: how many were stored, and why others not. */
  private tellRestored(): void {
    if (this.queue.some((item) => item.restored)) return;
    const sent = this.restoredSent;
    const refused = this.restoredRefused;
    this.restoredSent = 0;
    this.restoredRefused = [];
    const count = (n: number) => (n === 1 ? '1 judgment' : `${n} judgments`);
    const parts: string[] = [];
    if (sent > 0) parts.push(`${count(sent)} from your last visit ${sent === 1 ? 'was' : 'were'} sent.`);
    if (refused.length > 0) {
      parts.push(
        `${count(refused.length)} from your last visit ${refused.length === 1 ? 'was' : 'were'} not stored: ` +
          refused.filter((reason, index) => refused.indexOf(reason) === index).join(' '),
      );
    }
    this.message = { kind: refused.length > 0 ? 'error' : 'success', text: parts.join(' ') };
  }

  /**
   * Keeps the queue in localStorage, one list per rater and project: this page's unsent judgments, and
   * those another tab keeps there. Only the signed-in rater's lists are written.
   */
  private persist(): void {
    const user = session.user;
    if (!user) return;
    const stores = [...this.queue.map((item) => item.store), ...this.persisted].filter(
      (store, index, all) => all.indexOf(store) === index,
    );
    for (const store of stores) {
      if (!isRatersList(store, user.id)) continue;
      const mine = this.queue
        .filter((item) => item.store === store)
        .map(({ assignmentId, key, body }): KeptJudgment => ({ assignmentId, key, body }));
      // No storage (or it is full): the judgments are kept on this page only.
      if (!writeUnsent(store, mine, this.own)) break;
    }
    this.persisted = this.queue.map((item) => item.store);
  }

  private queueChanged(): void {
    this.persist();
    const count = this.queue.length;
    this.unsent = count;
    if (count === 0) this.troubleReason = null;
    this.trouble =
      this.troubleReason === null
        ? null
        : `${count === 1 ? '1 judgment is' : `${count} judgments are`} not saved yet (${this.troubleReason}). ` +
          'They are kept in this browser and sent again automatically (on your next visit if this tab closes).';
  }
}
