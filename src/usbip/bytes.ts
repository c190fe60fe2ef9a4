/** Bytes arriving from a stream socket in arbitrary pieces, taken off the front in whole messages. */
export class ByteQueue {
  #chunks: Uint8Array[] = [];
  #length = 0;

  get length(): number {
    return this.#length;
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#length += chunk.length;
  }

  /** The first `n` bytes without consuming them, or undefined while fewer have arrived. */
  peek(n: number): Uint8Array | undefined {
    if (n > this.#length) return undefined;
    this.#merge(n);
    return this.#chunks[0]!.subarray(0, n);
  }

  /** Removes and returns the first `n` bytes, or undefined while fewer have arrived. */
  take(n: number): Uint8Array | undefined {
    if (n > this.#length) return undefined;
    if (n === 0) return new Uint8Array(0);
    this.#merge(n);
    const first = this.#chunks[0]!;
    const out = first.slice(0, n);
    if (first.length === n) this.#chunks.shift();
    else this.#chunks[0] = first.subarray(n);
    this.#length -= n;
    return out;
  }

  clear(): void {
    this.#chunks = [];
    this.#length = 0;
  }

  /** Makes the first chunk at least `n` bytes long. */
  #merge(n: number): void {
    if (this.#chunks[0]!.length >= n) return;
    const merged = new Uint8Array(this.#length);
    let at = 0;
    for (const c of this.#chunks) {
      merged.set(c, at);
      at += c.length;
    }
    this.#chunks = [merged];
  }
}
