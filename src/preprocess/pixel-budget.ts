/**
 * A cap on the pixels being decoded at once in this process, shared by every task's
 * preprocessing. A decode waits its turn, first come first served, until the pixels already
 * in flight plus its own fit the cap; a picture larger than the whole cap runs once nothing
 * else does. The cap bounds memory where the number of concurrent decodes would not: a
 * 48-MP photo costs as much as four 12-MP ones.
 */
export class PixelBudget {
  private inFlight = 0;
  private readonly waiting: { pixels: number; admit: () => void }[] = [];

  constructor(readonly limit: number) {}

  /** Pixels held by decodes now. */
  get used(): number {
    return this.inFlight;
  }

  /** Resolves once `pixels` may be decoded; call the returned function when done, once. */
  async take(pixels: number, signal?: AbortSignal): Promise<() => void> {
    signal?.throwIfAborted();
    const wanted = Math.min(pixels, this.limit);
    if (this.waiting.length > 0 || !this.fits(wanted)) {
      await new Promise<void>((resolve, reject) => {
        const entry = { pixels: wanted, admit: resolve };
        this.waiting.push(entry);
        signal?.addEventListener(
          'abort',
          () => {
            const at = this.waiting.indexOf(entry);
            if (at < 0) return;
            this.waiting.splice(at, 1);
            this.drain();
            reject(signal.reason as Error);
          },
          { once: true },
        );
      });
    } else {
      this.inFlight += wanted;
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.inFlight -= wanted;
      this.drain();
    };
  }

  private fits(pixels: number): boolean {
    return this.inFlight === 0 || this.inFlight + pixels <= this.limit;
  }

  /** Admits waiters in order while the head fits; a large one at the head is not overtaken. */
  private drain(): void {
    while (this.waiting.length > 0 && this.fits(this.waiting[0].pixels)) {
      const next = this.waiting.shift()!;
      this.inFlight += next.pixels;
      next.admit();
    }
  }
}
