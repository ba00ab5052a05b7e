// "Pick a row → confirm in a dialog → run the action with a busy button → close": the state and
// flow behind every confirmed action (revoke a token, a session, an invitation; disable a user;
// archive a project; cancel a round).
export class ConfirmAction<T> {
  /** The row the dialog asks about. */
  target = $state<T | null>(null);
  /** Whether the dialog is open (bind a ConfirmDialog's `open` to it). */
  open = $state(false);
  /** True while the action runs. */
  busy = $state(false);

  constructor(
    private readonly action: (target: T) => Promise<void>,
    private readonly onError: (error: unknown) => void,
  ) {}

  /** Opens the dialog for this row. */
  ask(target: T): void {
    this.target = target;
    this.open = true;
  }

  /** Runs the action on the row asked about (the dialog's confirm), then closes the dialog. */
  confirm = async (): Promise<void> => {
    const target = this.target;
    if (target === null) return;
    this.busy = true;
    try {
      await this.action(target);
    } catch (error) {
      this.onError(error);
    } finally {
      this.busy = false;
      this.open = false;
    }
  };
}
