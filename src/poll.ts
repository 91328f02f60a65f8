/** A job run now and then every interval until stopped: the feed watcher's and the bounce mailbox's loop. */
export interface Polling {
  /** No new run starts; resolves when the one under way (told by its signal to stop) is done. */
  stop(): Promise<void>;
}

/** Runs `job` at once, then `intervalMs` after each run ends. `job` handles its own failures. */
export function startPolling(job: (signal: AbortSignal) => Promise<unknown>, intervalMs: number): Polling {
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running: Promise<unknown> | undefined;
  let stopped = false;
  const tick = () => {
    running = job(controller.signal).finally(() => {
      running = undefined;
      if (!stopped) timer = setTimeout(tick, intervalMs);
    });
  };
  tick();
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      controller.abort();
      await running;
    },
  };
}
