/**
 * Who has a volume mounted, counted per Docker mount ID (the `ID` of Mount/Unmount requests;
 * Docker sends a fresh one for each mount and the same one when unmounting). After a restart
 * the IDs are unknown, so the counts come back from the Engine API as anonymous references:
 * one per running container mount; an Unmount with an unknown ID releases one of those.
 */
export class MountRefs {
  readonly #ids = new Map<string, Set<string>>();
  readonly #anonymous = new Map<string, number>();

  mount(volume: string, id: string): void {
    const set = this.#ids.get(volume) ?? new Set<string>();
    set.add(id);
    this.#ids.set(volume, set);
  }

  unmount(volume: string, id: string): void {
    const set = this.#ids.get(volume);
    if (set?.delete(id)) {
      if (set.size === 0) this.#ids.delete(volume);
      return;
    }
    const anonymous = this.#anonymous.get(volume) ?? 0;
    if (anonymous > 1) this.#anonymous.set(volume, anonymous - 1);
    else this.#anonymous.delete(volume);
  }

  count(volume: string): number {
    return (this.#ids.get(volume)?.size ?? 0) + (this.#anonymous.get(volume) ?? 0);
  }

  /** Replaces the anonymous references with `counts` (volume → running container mounts). */
  restore(counts: ReadonlyMap<string, number>): void {
    this.#anonymous.clear();
    for (const [volume, n] of counts) if (n > 0) this.#anonymous.set(volume, n);
  }

  /** Volume → reference count, for DumpInternalState. */
  snapshot(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const volume of new Set([...this.#ids.keys(), ...this.#anonymous.keys()]).values()) out[volume] = this.count(volume);
    return out;
  }
}
