// The answer to the last action on a page or panel: a success note or an error, never both (shown by
// the Alerts component).
import { messageOf } from './errors.js';

export class Feedback {
  /** The success note, or null. */
  notice = $state<string | null>(null);
  /** The error, or null. */
  error = $state<string | null>(null);

  constructor(private readonly describe: (error: unknown) => string = messageOf) {}

  /** Shows a success note (and drops an earlier error). */
  say = (message: string): void => {
    this.notice = message;
    this.error = null;
  };

  /** Shows what went wrong (and drops an earlier success note). */
  fail = (error: unknown): void => {
    this.error = this.describe(error);
    this.notice = null;
  };

  clear = (): void => {
    this.notice = null;
    this.error = null;
  };
}
