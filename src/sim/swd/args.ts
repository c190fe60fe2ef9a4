/**
 * The command line of STM32_Programmer_CLI as the stand-in understands it (ST UM2237, command line interface
 * chapter): options in order, each executed in turn after the connection. Hand-written because the tool's
 * syntax (`-c port=SWD sn=..`, `-e [0 3]`, `-ob displ`) is not what a getopt-style library parses.
 */

export type Command =
  | { kind: 'list'; interface: string }
  | { kind: 'erase'; all: true }
  | { kind: 'erase'; all: false; sectors: number[] }
  | { kind: 'write'; file: string; address?: number }
  | { kind: 'verify' }
  | { kind: 'upload'; address: number; size: number; file: string }
  | { kind: 'read'; width: 8 | 16 | 32; address: number; size: number }
  | { kind: 'ob-display' }
  | { kind: 'ob-write'; values: Record<string, number> }
  | { kind: 'reset'; hard: boolean }
  | { kind: 'start'; address?: number };

export interface ParsedArgs {
  connect?: Record<string, string>;
  commands: Command[];
  quiet: boolean;
  version: boolean;
  help: boolean;
}

export class ArgsError extends Error {}

function num(text: string | undefined, what: string): number {
  if (text === undefined) throw new ArgsError(`missing ${what}`);
  const t = text.trim();
  const n = /^0x[0-9a-f]+$/i.test(t)
    ? Number.parseInt(t.slice(2), 16)
    : /^\d+$/.test(t)
      ? Number.parseInt(t, 10)
      : Number.NaN;
  if (!Number.isFinite(n)) throw new ArgsError(`wrong ${what} "${text}"`);
  return n;
}

const isOption = (t: string | undefined) => t !== undefined && /^-{1,2}[A-Za-z]/.test(t);

export function parseArgs(argv: readonly string[]): ParsedArgs {
  const out: ParsedArgs = { commands: [], quiet: false, version: false, help: false };
  let i = 0;
  const next = () => argv[i++];
  const params = (): string[] => {
    const list: string[] = [];
    while (i < argv.length && !isOption(argv[i])) list.push(argv[i++]!);
    return list;
  };
  while (i < argv.length) {
    const opt = next()!;
    switch (opt) {
      case '-c':
      case '--connect': {
        const conn: Record<string, string> = {};
        for (const p of params()
          .flatMap((x) => x.split(/\s+/))
          .filter(Boolean)) {
          const eq = p.indexOf('=');
          if (eq < 0) throw new ArgsError(`wrong connect parameter "${p}"`);
          conn[p.slice(0, eq).toLowerCase()] = p.slice(eq + 1);
        }
        if (!conn.port) throw new ArgsError('missing port= in --connect');
        out.connect = conn;
        break;
      }
      case '-l':
      case '--list':
        out.commands.push({ kind: 'list', interface: (params()[0] ?? 'all').toLowerCase() });
        break;
      case '-e':
      case '--erase': {
        const raw = params().join(' ');
        const words = raw.replace(/[[\]]/g, ' ').trim().split(/\s+/).filter(Boolean);
        if (words.length === 0) throw new ArgsError('missing erase argument');
        if (words[0]!.toLowerCase() === 'all') {
          out.commands.push({ kind: 'erase', all: true });
          break;
        }
        const nums = words.map((w) => num(w, 'sector'));
        // "[a b]" is the range a..b; a bare list names each sector.
        const range = raw.includes('[');
        if (range && (nums.length !== 2 || nums[1]! < nums[0]!))
          throw new ArgsError(`wrong sector range "${raw}"`);
        const sectors = range
          ? Array.from({ length: nums[1]! - nums[0]! + 1 }, (_, k) => nums[0]! + k)
          : nums;
        out.commands.push({ kind: 'erase', all: false, sectors });
        break;
      }
      case '-w':
      case '--write':
      case '-d':
      case '--download': {
        const p = params();
        if (!p[0]) throw new ArgsError('missing file path');
        out.commands.push({
          kind: 'write',
          file: p[0],
          ...(p[1] !== undefined ? { address: num(p[1], 'address') } : {}),
        });
        break;
      }
      case '-v':
      case '--verify':
        out.commands.push({ kind: 'verify' });
        break;
      case '-u':
      case '--upload':
      case '-r':
      case '--read': {
        const p = params();
        if (!p[2]) throw new ArgsError('missing file path');
        out.commands.push({
          kind: 'upload',
          address: num(p[0], 'address'),
          size: num(p[1], 'size'),
          file: p[2],
        });
        break;
      }
      case '-r8':
      case '-r16':
      case '-r32': {
        const p = params();
        out.commands.push({
          kind: 'read',
          width: Number(opt.slice(2)) as 8 | 16 | 32,
          address: num(p[0], 'address'),
          size: num(p[1], 'size'),
        });
        break;
      }
      case '-ob':
      case '--optionbytes': {
        const p = params();
        if (p.length === 1 && p[0]!.toLowerCase() === 'displ') out.commands.push({ kind: 'ob-display' });
        else {
          const values: Record<string, number> = {};
          for (const kv of p) {
            const [k, v] = kv.split('=');
            if (!k || v === undefined) throw new ArgsError(`wrong option byte "${kv}"`);
            values[k.toUpperCase()] = num(v, `value of ${k}`);
          }
          if (Object.keys(values).length === 0) throw new ArgsError('missing option byte');
          out.commands.push({ kind: 'ob-write', values });
        }
        break;
      }
      case '-rst':
        out.commands.push({ kind: 'reset', hard: false });
        break;
      case '-hardRst':
        out.commands.push({ kind: 'reset', hard: true });
        break;
      case '-s':
      case '--start':
      case '-g':
      case '--go': {
        const p = params();
        out.commands.push({
          kind: 'start',
          ...(p[0] !== undefined ? { address: num(p[0], 'address') } : {}),
        });
        break;
      }
      case '-q':
      case '--quiet':
        out.quiet = true;
        break;
      case '-vb':
      case '--verbosity':
        params();
        break;
      case '--version':
      case '-version':
        out.version = true;
        break;
      case '-h':
      case '--help':
      case '-?':
        out.help = true;
        break;
      default:
        throw new ArgsError(`unknown option "${opt}"`);
    }
  }
  return out;
}
