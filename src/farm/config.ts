import { readFileSync } from 'node:fs';
import path from 'node:path';
import { type Document, isMap, isPair, isScalar, LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import { HilError, sysCode } from '../errors.ts';
import { findPart } from '../parts/catalogue.ts';
import { relayIssues } from '../power/validate.ts';
import { type BoardConfig, type FarmFile, farmSchema } from './schema.ts';

export class ConfigError extends HilError {
  constructor(code: string, message: string, details: Record<string, unknown> = {}, hint?: string) {
    super(code, message, { kind: 'input', details, ...(hint ? { hint } : {}) });
  }
}

export interface FarmConfig extends FarmFile {
  /** Absolute path of the file it came from. */
  file: string;
  /** Directory of the file: relative paths inside it resolve from here. */
  dir: string;
  stateDir: string;
  reportsDir: string;
}

export const DEFAULT_CONFIG = 'boards.yaml';

/** `--config`, else STM32_HIL_CONFIG, else ./boards.yaml. */
export function configPath(option: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(option ?? env.STM32_HIL_CONFIG ?? DEFAULT_CONFIG);
}

function position(doc: Document, counter: LineCounter, keyPath: PropertyKey[], wantKey: boolean) {
  // Walk down to the deepest node that exists; for a bad key point at the key itself.
  let node: unknown = doc.contents;
  let range: [number, number, number] | undefined = (doc.contents as { range?: [number, number, number] })
    ?.range;
  for (const k of keyPath) {
    if (!isMap(node) && !(node && typeof node === 'object' && 'items' in node)) break;
    const items = (node as { items: unknown[] }).items;
    let next: unknown;
    if (isMap(node)) {
      const pair = items.find((p) => isPair(p) && isScalar(p.key) && p.key.value === k);
      if (!pair || !isPair(pair)) break;
      const keyNode = pair.key as { range?: [number, number, number] };
      next = pair.value;
      range =
        (wantKey && k === keyPath.at(-1)
          ? keyNode.range
          : (next as { range?: [number, number, number] })?.range) ?? keyNode.range;
    } else {
      next = items[Number(k)];
      range = (next as { range?: [number, number, number] })?.range ?? range;
    }
    node = next;
  }
  const pos = counter.linePos(range?.[0] ?? 0);
  return { line: pos.line, col: pos.col };
}

function pathText(p: PropertyKey[]): string {
  return p.map((k, i) => (typeof k === 'number' ? `[${k}]` : `${i ? '.' : ''}${String(k)}`)).join('');
}

function issueMessage(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys')
    return `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
  return issue.message;
}

/** Parses and validates boards.yaml text; `file` is used in messages and to resolve relative paths. */
export function parseConfig(text: string, file: string): FarmConfig {
  const counter = new LineCounter();
  const doc = parseDocument(text, { lineCounter: counter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length) {
    const e = doc.errors[0]!;
    const pos = counter.linePos(e.pos[0]);
    throw new ConfigError('E_CONFIG_YAML', `${file}:${pos.line}:${pos.col}: ${e.message.split('\n')[0]}`, {
      file,
      line: pos.line,
      col: pos.col,
    });
  }
  const raw: unknown = doc.toJS();
  const result = farmSchema.safeParse(raw);
  if (!result.success) {
    const issues = result.error.issues.map((issue) => {
      const keyPath = issue.code === 'unrecognized_keys' ? [...issue.path, issue.keys[0]!] : issue.path;
      const pos = position(doc, counter, keyPath, issue.code === 'unrecognized_keys');
      return { ...pos, path: pathText(keyPath), message: issueMessage(issue) };
    });
    issues.sort((a, b) => a.line - b.line || a.col - b.col);
    const first = issues[0]!;
    throw new ConfigError(
      'E_CONFIG_SCHEMA',
      `${file}:${first.line}:${first.col}: ${first.path}: ${first.message}${issues.length > 1 ? ` (and ${issues.length - 1} more)` : ''}`,
      { file, issues },
    );
  }
  const farm = result.data;
  const seen = new Map<string, number>();
  farm.boards.forEach((b, i) => {
    const at = (key: string) => position(doc, counter, ['boards', i, key], false);
    if (seen.has(b.id)) {
      const p = at('id');
      throw new ConfigError(
        'E_CONFIG_DUPLICATE_BOARD',
        `${file}:${p.line}:${p.col}: boards[${i}].id: board "${b.id}" is defined twice`,
        { file, ...p },
      );
    }
    seen.set(b.id, i);
    if (!findPart(b.part)) {
      const p = at('part');
      throw new ConfigError(
        'E_CONFIG_PART',
        `${file}:${p.line}:${p.col}: boards[${i}].part: unknown part "${b.part}"`,
        { file, ...p },
      );
    }
    if (!b.virtual && !b.usb) {
      const p = position(doc, counter, ['boards', i], false);
      throw new ConfigError(
        'E_CONFIG_BOARD',
        `${file}:${p.line}:${p.col}: boards[${i}] ("${b.id}"): a real board needs usb: { path: ... } (or virtual: for a simulated one)`,
        { file, ...p },
      );
    }
  });
  const relay = relayIssues(farm)[0];
  if (relay) {
    const p = position(doc, counter, relay.path, false);
    throw new ConfigError(
      'E_CONFIG_RELAY',
      `${file}:${p.line}:${p.col}: ${pathText(relay.path)}: ${relay.message}`,
      { file, ...p },
    );
  }
  const dir = path.dirname(path.resolve(file));
  return {
    ...farm,
    file: path.resolve(file),
    dir,
    stateDir: path.resolve(dir, farm.farm?.stateDir ?? '.stm32-hil'),
    reportsDir: path.resolve(dir, farm.farm?.reportsDir ?? 'reports'),
  };
}

export function loadConfig(file: string): FarmConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = sysCode(e);
    throw new ConfigError(
      code === 'ENOENT' ? 'E_CONFIG_NOT_FOUND' : 'E_CONFIG_READ',
      code === 'ENOENT' ? `${file}: no such file` : `${file}: ${(e as Error).message}`,
      { file },
      code === 'ENOENT' ? 'pass --config FILE or set STM32_HIL_CONFIG' : undefined,
    );
  }
  return parseConfig(text, file);
}

export function findBoard(config: FarmConfig, id: string): BoardConfig {
  const board = config.boards.find((b) => b.id === id);
  if (!board) {
    throw new ConfigError(
      'E_BOARD_UNKNOWN',
      `no board "${id}" in ${config.file}`,
      { board: id },
      `boards: ${config.boards.map((b) => b.id).join(', ')}`,
    );
  }
  return board;
}
