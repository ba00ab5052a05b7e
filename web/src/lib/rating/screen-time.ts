// How long a comparison was on screen, without the time the tab was hidden: the `timeSpentMs` a
// judgment carries.

/** Whether this page is hidden now (never outside a browser). */
function pageHidden(): boolean {
  return typeof document !== 'undefined' && document.visibilityState === 'hidden';
}

export class ScreenTime {
  private shownAt = 0;
  private hiddenMs = 0;
  private hiddenSince: number | null = null;

  constructor(
    private readonly clock: () => number = () => performance.now(),
    private readonly hidden: () => boolean = pageHidden,
  ) {}

  /** A comparison came on screen. */
  restart(): void {
    this.shownAt = this.clock();
    this.hiddenMs = 0;
    this.hiddenSince = this.hidden() ? this.shownAt : null;
  }

  /** The page was hidden or shown again (`visibilitychange`). */
  visibilityChanged(): void {
    if (this.hidden()) this.hiddenSince ??= this.clock();
    else if (this.hiddenSince !== null) {
      this.hiddenMs += this.clock() - this.hiddenSince;
      this.hiddenSince = null;
    }
  }

  /** Milliseconds on screen and visible since restart(), at least 1. */
  elapsedMs(): number {
    const at = this.clock();
    const hidden = this.hiddenMs + (this.hiddenSince === null ? 0 : at - this.hiddenSince);
    return Math.max(1, Math.round(at - this.shownAt - hidden));
  }
}
