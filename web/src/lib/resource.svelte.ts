// "Load what the page shows, say when it failed, offer a retry, load again after a change": the state
// behind every list and record a page or panel fetches (tokens, users, a project, its members).
import { messageOf } from './errors.js';

export class Resource<T> {
  /** The last value loaded, or null until a load succeeds. */
  value = $state<T | null>(null);
  /** Why the last load failed, or null. */
  error = $state<string | null>(null);
  /** True while a load runs. */
  loading = $state(false);

  constructor(
    private readonly fetch: () => Promise<T>,
    private readonly describe: (error: unknown) => string = messageOf,
  ) {}

  /** Loads again; a failure keeps the last value and sets `error`. */
  refresh = async (): Promise<void> => {
    this.loading = true;
    try {
      this.value = await this.fetch();
      this.error = null;
    } catch (error) {
      this.error = this.describe(error);
    } finally {
      this.loading = false;
    }
  };

  /**
   * From a component's setup: loads whenever `when()` turns true, and again whenever what the fetch
   * reads before its first `await` changes (a route parameter, a filter).
   */
  loadWhen(when: () => boolean): this {
    $effect(() => {
      if (when()) void this.refresh();
    });
    return this;
  }

  /** From a component's setup: every `ms`, loads again when `when()` holds at that moment. */
  pollWhile(ms: number, when: () => boolean): this {
    $effect(() => {
      const timer = setInterval(() => {
        if (when()) void this.refresh();
      }, ms);
      return () => clearInterval(timer);
    });
    return this;
  }
}
