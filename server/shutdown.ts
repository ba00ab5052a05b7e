// How the server process stops: on SIGINT (Ctrl+C), SIGTERM (a process manager, a container
// runtime, `kill`) or SIGHUP (the terminal closed), or after an error nobody caught. Everything the
// server started (the trainer worker, the embedded PostgreSQL) stops with it, in order, quietly and
// within seconds; a second signal, or steps that overrun, end it at once.

export interface StopHandlers {
  /** Stops everything gracefully, in order. */
  stop(): Promise<void>;
  /** Ends what `stop` could not: called when a second signal comes or the grace time runs out. */
  force(): void;
  say(message: string): void;
  /** How long `stop` may take before `force` (default 20 s). */
  graceMs?: number;
}

/** Ctrl+C reaches the server twice (from the terminal, and forwarded by npm): repeats this close are one. */
const SAME_SIGNAL_MS = 1_500;
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

export function stopOnSignals(handlers: StopHandlers): { stop(reason: string, code?: number): void } {
  let stoppingSince = 0;
  const forceExit = (why: string) => {
    handlers.say(`${why}; stopping at once.`);
    try {
      handlers.force();
    } finally {
      process.exit(1);
    }
  };
  const stop = (reason: string, code = 0) => {
    if (stoppingSince) {
      if (Date.now() - stoppingSince > SAME_SIGNAL_MS && reason.startsWith('SIG'))
        forceExit(`${reason} again`);
      return;
    }
    stoppingSince = Date.now();
    handlers.say(`Stopping (${reason})...`);
    const timer = setTimeout(
      () => forceExit(`Still stopping after ${(handlers.graceMs ?? 20_000) / 1000} s`),
      handlers.graceMs ?? 20_000,
    );
    handlers.stop().then(
      () => {
        clearTimeout(timer);
        handlers.say('Stopped.');
        process.exit(code);
      },
      (error: unknown) => {
        clearTimeout(timer);
        handlers.say(`Stopped with an error: ${error instanceof Error ? error.message : String(error)}`);
        try {
          handlers.force();
        } finally {
          process.exit(1);
        }
      },
    );
  };
  for (const signal of SIGNALS) process.on(signal, () => stop(signal));
  // A closed terminal (SIGHUP) or a reader gone away makes writes to the console fail: what is
  // lost is only output, never a reason to fail the stop.
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});
  const crashed = (error: unknown) => {
    console.error('[loom] Unexpected error:', error);
    stop('after an unexpected error', 1);
  };
  process.on('uncaughtException', crashed);
  process.on('unhandledRejection', crashed);
  return { stop };
}

/** Resolves when `promise` settles or after `ms`, whichever comes first (true: it settled). */
export async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([
      promise.then(
        () => true,
        () => true,
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
