/** `0x08000000` style, 8 upper-case digits. */
export function hex32(n: number): string {
  return `0x${(n >>> 0).toString(16).toUpperCase().padStart(8, '0')}`;
}

export function hex8(n: number): string {
  return `0x${(n & 0xff).toString(16).toUpperCase().padStart(2, '0')}`;
}

/** Parses `0x1234`, `1234h`-free decimal or hex numbers from the command line or YAML. */
export function parseNumber(text: string): number | undefined {
  const t = text.trim().replace(/_/g, '');
  if (/^0x[0-9a-f]+$/i.test(t)) return Number.parseInt(t.slice(2), 16);
  if (/^[0-9]+$/.test(t)) return Number.parseInt(t, 10);
  return undefined;
}

/**
 * Classic 16-bytes-per-line dump of `data` (which starts at `base`), around `center`.
 * `mark` highlights differing offsets with a trailing `*` column.
 */
export function hexDump(
  data: Uint8Array,
  base: number,
  from: number,
  to: number,
  mark?: (addr: number) => boolean,
): string {
  const lines: string[] = [];
  const start = Math.max(base, from - ((from - base) % 16));
  const end = Math.min(base + data.length, to);
  for (let line = start; line < end; line += 16) {
    const bytes: string[] = [];
    let marked = '';
    for (let a = line; a < line + 16; a++) {
      if (a < base || a >= base + data.length || a >= end) {
        bytes.push('  ');
        continue;
      }
      bytes.push(data[a - base]!.toString(16).padStart(2, '0'));
      if (mark?.(a)) marked += ` ${hex32(a)}`;
    }
    lines.push(
      `${hex32(line)}  ${bytes.slice(0, 8).join(' ')}  ${bytes.slice(8).join(' ')}${marked ? `  <-${marked}` : ''}`,
    );
  }
  return lines.join('\n');
}
