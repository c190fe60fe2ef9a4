import { DfuError } from './errors.ts';

export type Permission = 'mass-erase' | 'read-unprotect';

/**
 * Destructive operations the caller must allow explicitly (the way probe-rs asks for `Permissions`):
 * a mass erase wipes every sector, not only those an image touches; a read unprotect wipes the whole flash
 * and resets the chip. Immutable: each `allow...` returns a new object.
 */
export class Permissions {
  readonly #granted: ReadonlySet<Permission>;

  private constructor(granted: Iterable<Permission>) {
    this.#granted = new Set(granted);
  }

  static none(): Permissions {
    return new Permissions([]);
  }

  allowMassErase(): Permissions {
    return new Permissions([...this.#granted, 'mass-erase']);
  }

  allowReadUnprotect(): Permissions {
    return new Permissions([...this.#granted, 'read-unprotect']);
  }

  has(p: Permission): boolean {
    return this.#granted.has(p);
  }

  /** Throws E_DFU_PERMISSION (a usage error) unless `p` was allowed. */
  require(p: Permission, what: string): void {
    if (this.has(p)) return;
    const cli = p === 'mass-erase' ? 'pass --mass-erase --force' : 'run `stm32-hil unprotect --force`';
    throw new DfuError('E_DFU_PERMISSION', `${what} needs explicit permission: it erases the whole flash`, {
      kind: 'usage',
      details: { permission: p },
      hint: `${cli} on the command line, or Permissions.none().${p === 'mass-erase' ? 'allowMassErase' : 'allowReadUnprotect'}() in code`,
    });
  }
}
