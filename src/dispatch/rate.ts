/** Spaces sends evenly to at most `perSecond` messages a second (0: no limit), shared by all senders. */
export function createRateLimiter(perSecond: number): { take(): Promise<void> } {
  if (perSecond <= 0) return { take: async () => {} };
  const interval = 1000 / perSecond;
  let nextSlot = 0;
  return {
    take() {
      const now = performance.now();
      const slot = Math.max(now, nextSlot);
      nextSlot = slot + interval;
      const wait = slot - now;
      return wait < 1 ? Promise.resolve() : new Promise((resolve) => setTimeout(resolve, wait));
    },
  };
}
