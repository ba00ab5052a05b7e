// "Check the form, run the request with a busy button, show the error or the success note": the state
// and flow behind every form that sends something (create a token, change a password, invite a user).
import { messageOf } from './errors.js';

export interface SubmitOptions {
  /** Checks the form first: a message for the user stops the submit before any request. */
  check?: () => string | null;
  /** Turns a failure into the message shown (default: the error's message). */
  describe?: (error: unknown) => string;
}

export class SubmitAction {
  /** True while the action runs (disable the submit button and say so on it). */
  busy = $state(false);
  /** The check's message or why the action failed, or null. */
  error = $state<string | null>(null);
  /** What the action said on success (its returned string), or null. */
  notice = $state<string | null>(null);

  constructor(
    private readonly action: () => Promise<string | void>,
    private readonly options: SubmitOptions = {},
  ) {}

  /** Runs the check, then the action; true when the action succeeded. Pass it to a form's `onsubmit`. */
  submit = async (event?: Event): Promise<boolean> => {
    event?.preventDefault();
    this.error = null;
    this.notice = null;
    const problem = this.options.check?.() ?? null;
    if (problem !== null) {
      this.error = problem;
      return false;
    }
    this.busy = true;
    try {
      this.notice = (await this.action()) ?? null;
      return true;
    } catch (error) {
      this.error = (this.options.describe ?? messageOf)(error);
      return false;
    } finally {
      this.busy = false;
    }
  };
}
