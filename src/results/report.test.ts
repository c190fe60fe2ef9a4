import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type DefaultTreeAdapterTypes, type ParserError, parse } from 'parse5';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { analyse } from './regressions.ts';
import { renderQualificationPage, writeQualificationPage } from './report.ts';
import { openStore, type ResultsStore } from './store.ts';
import { recordSyntheticNights, SYNTHETIC_KNOWN_ISSUES } from './synthetic.ts';

type Node = DefaultTreeAdapterTypes.ChildNode | DefaultTreeAdapterTypes.Document;
type Element = DefaultTreeAdapterTypes.Element;

function load(html: string): { doc: DefaultTreeAdapterTypes.Document; errors: ParserError[] } {
  const errors: ParserError[] = [];
  const doc = parse(html, { onParseError: (e) => errors.push(e) });
  return { doc, errors };
}
function* walk(n: Node): Generator<Element> {
  if ('tagName' in n) yield n;
  const kids = 'childNodes' in n ? n.childNodes : [];
  // <template> content is not used by the page.
  for (const k of kids) yield* walk(k);
}
const attr = (e: Element, name: string) => e.attrs.find((a) => a.name === name)?.value;
const all = (n: Node, pred: (e: Element) => boolean) => [...walk(n)].filter(pred);
const byTag = (n: Node, tag: string) => all(n, (e) => e.tagName === tag);
const byId = (n: Node, id: string) => all(n, (e) => attr(e, 'id') === id)[0];
function text(n: Node): string {
  if (n.nodeName === '#text') return (n as DefaultTreeAdapterTypes.TextNode).value;
  return ('childNodes' in n ? n.childNodes : []).map((k) => text(k)).join('');
}

let dir: string;
let store: ResultsStore;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'stm32-hil-report-'));
  store = openStore(path.join(dir, 'results.sqlite'), { synchronous: 'normal' });
});
afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('qualification page', () => {
  it('writes <reports>/qualification/index.html with the regression matrix in a real table', () => {
    recordSyntheticNights(store, 5);
    const { file, analysis } = writeQualificationPage(store, path.join(dir, 'reports'), {
      knownIssues: SYNTHETIC_KNOWN_ISSUES,
    });
    expect(file).toBe(path.join(dir, 'reports', 'qualification', 'index.html'));
    const { doc, errors } = load(readFileSync(file, 'utf8'));
    expect(errors).toEqual([]);

    const matrix = byId(doc, 'matrix')!;
    expect(matrix.tagName).toBe('table');
    const headers = byTag(byTag(matrix, 'thead')[0]!, 'th')
      .map((th) => attr(th, 'data-column'))
      .filter(Boolean);
    expect(headers).toEqual(analysis.columns.map((c) => c.key));
    const rows = byTag(byTag(matrix, 'tbody')[0]!, 'tr');
    expect(rows.map((r) => attr(r, 'data-test'))).toEqual([
      'bank2/mass-erase-workaround',
      'bank2/write',
      'flash/full-image',
      'power/enumeration',
      'stress/sector-cycles',
    ]);
    const cell = (test: string, column: string) =>
      all(
        matrix,
        (e) => e.tagName === 'td' && attr(e, 'data-test') === test && attr(e, 'data-column') === column,
      )[0]!;
    const bad = cell('bank2/write', 'STM32H743 0x90');
    expect(attr(bad, 'data-failures')).toBe('5');
    expect(attr(bad, 'class')).toBe('fail');
    expect(text(bad)).toMatch(/^5\/5 failed100% \[57%–100%\]/);
    expect(text(bad)).toContain('known: h7-bank2-erase');
    const good = cell('bank2/write', 'STM32H743 0xD2');
    expect([attr(good, 'data-runs'), attr(good, 'data-failures'), attr(good, 'class')]).toEqual([
      '10',
      '0',
      'pass',
    ]);
    expect(text(good)).toContain('0% [0%–28%]');
    expect(text(cell('flash/full-image', 'STM32H743 0xD2'))).toContain('board problem: h743-custom');
    expect(text(cell('stress/sector-cycles', 'STM32H743 0x92'))).toContain('flaky');
    // Every row has one cell per column.
    for (const r of rows) expect(byTag(r, 'td')).toHaveLength(analysis.columns.length);

    const verdict = (test: string, candidate: string) =>
      all(
        byId(doc, 'verdicts')!,
        (e) => e.tagName === 'tr' && attr(e, 'data-test') === test && attr(e, 'data-candidate') === candidate,
      )[0]!;
    expect(attr(verdict('bank2/write', '0x90'), 'data-verdict')).toBe('regression');
    expect(text(verdict('bank2/write', '0x90'))).toContain('regression (known)');
    expect(attr(verdict('bank2/write', '0x92'), 'data-verdict')).toBe('fixed');
    expect(attr(verdict('bank2/mass-erase-workaround', '0x90'), 'data-verdict')).toBe('unchanged');

    const problems = byTag(byTag(byId(doc, 'board-problems')!, 'tbody')[0]!, 'tr');
    expect(problems.map((r) => attr(r, 'data-board'))).toEqual(['h743-custom']);
    const issues = Object.fromEntries(
      byTag(byTag(byId(doc, 'known-issues')!, 'tbody')[0]!, 'tr').map((r) => [
        attr(r, 'data-issue'),
        attr(r, 'data-status'),
      ]),
    );
    expect(issues).toEqual({
      'h7-bank2-erase': 'reproduced',
      'custom-weak-bits': 'reproduced',
      'd2-enumeration-glitch': 'possibly-fixed',
      'd3-mass-erase': 'not-run',
    });
    expect(text(byId(doc, 'known-issues')!)).toContain('ST AN2606 Table 136');
    expect(attr(byId(doc, 'verdict')!, 'data-verdict')).toBe('pass');
  });

  it('is self-contained: no script, no external resource', () => {
    recordSyntheticNights(store, 3);
    const html = renderQualificationPage(analyse(store));
    const { doc } = load(html);
    expect(byTag(doc, 'script')).toEqual([]);
    expect(byTag(doc, 'link')).toEqual([]);
    expect(all(doc, (e) => e.attrs.some((a) => a.name === 'src' || a.name === 'href'))).toEqual([]);
    expect(byTag(doc, 'style')).toHaveLength(1);
  });

  it('draws one timing chart per measurement, a line per board, and marks a timing regression', () => {
    recordSyntheticNights(store, 6, {
      measure: (b, name, n) =>
        n === 6 && b.id === 'h743-revy-d2' && name === 'enumeration_ms' ? 1200 : undefined,
    });
    const { doc } = load(renderQualificationPage(analyse(store)));
    const charts = byTag(doc, 'svg');
    expect(charts.map((s) => attr(s, 'data-measurement'))).toEqual([
      'enumeration_ms',
      'erase_ms',
      'throughput_kib_s',
    ]);
    for (const svg of charts) {
      const lines = byTag(svg, 'polyline');
      expect(lines).toHaveLength(6);
      // Six nights: six points per line.
      for (const l of lines) expect(attr(l, 'points')!.trim().split(/\s+/)).toHaveLength(6);
    }
    const marked = all(charts[0]!, (e) => attr(e, 'class') === 'timing-regression');
    expect(marked).toHaveLength(1);
    expect(text(marked[0]!)).toBe('h743-revy-d2 run 6: 1200 ms');
    expect(all(charts[1]!, (e) => attr(e, 'class') === 'timing-regression')).toEqual([]);
    const row = all(
      byId(doc, 'timing')!,
      (e) => e.tagName === 'tr' && attr(e, 'data-verdict') === 'regression',
    );
    expect(row.map((r) => `${attr(r, 'data-board')} ${attr(r, 'data-measurement')}`)).toEqual([
      'h743-revy-d2 enumeration_ms',
    ]);
    expect(attr(byId(doc, 'verdict')!, 'data-verdict')).toBe('fail');
  });

  it('escapes names from the store', () => {
    const run = store.beginRun();
    store.recordOutcome({
      runId: run.id,
      board: 'b<1>',
      part: 'stm32h743',
      bootloader: 0x90,
      suite: 'x',
      test: '<script>alert("x")</script>',
      status: 'failed',
    });
    const { doc, errors } = load(renderQualificationPage(analyse(store)));
    expect(errors).toEqual([]);
    expect(byTag(doc, 'script')).toEqual([]);
    const row = byTag(byTag(byId(doc, 'matrix')!, 'tbody')[0]!, 'tr')[0]!;
    expect(attr(row, 'data-test')).toBe('x/<script>alert("x")</script>');
    expect(text(byTag(row, 'th')[0]!)).toBe('x/<script>alert("x")</script>');
  });

  it('renders an empty store', () => {
    const { doc, errors } = load(renderQualificationPage(analyse(store)));
    expect(errors).toEqual([]);
    expect(byId(doc, 'matrix')).toBeUndefined();
    expect(text(byId(doc, 'matrix-none')!)).toBe('No outcomes recorded.');
  });
});
