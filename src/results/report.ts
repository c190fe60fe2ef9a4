import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { hex8 } from '../util/hex.ts';
import { type AnalyseOptions, type Analysis, analyse, type Cell, type TimingSeries } from './regressions.ts';
import { ResultsError, type ResultsStore } from './store.ts';

/**
 * The bootloader qualification page: one self-contained HTML file (inline CSS and SVG, no script, no
 * network) with the regression matrix, failure rates with intervals, verdicts, known issues, board
 * problems and the timing measurements night by night. Tables carry `data-*` attributes so scripts and
 * browser tests can read them.
 */

export interface PageOptions {
  title?: string;
}

const esc = (s: unknown) =>
  String(s).replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  );

const bl = (v: number | null) => (v === null ? '?' : hex8(v));
const pct = (x: number) => `${(x * 100).toFixed(x > 0 && x < 0.1 ? 1 : 0)}%`;
const fmt = (x: number | null) => (x === null ? '–' : Number.isInteger(x) ? String(x) : x.toPrecision(4));

function cellHtml(test: string, column: string, cell: Cell | undefined): string {
  if (!cell) return `<td class="empty" data-test="${esc(test)}" data-column="${esc(column)}">–</td>`;
  const cls =
    cell.runs === 0
      ? 'empty'
      : cell.failures === 0
        ? 'pass'
        : cell.failures === cell.runs
          ? 'fail'
          : 'partial';
  const badges: string[] = [];
  if (cell.flakyBoards.length)
    badges.push(`<span class="badge flaky" title="${esc(cell.flakyBoards.join(', '))}">flaky</span>`);
  if (cell.boardProblems.length)
    badges.push(
      `<span class="badge board" title="${esc(cell.boardProblems.join(', '))}">board problem: ${esc(cell.boardProblems.join(', '))}</span>`,
    );
  if (cell.knownIssues.length)
    badges.push(`<span class="badge known">known: ${esc(cell.knownIssues.join(', '))}</span>`);
  return (
    `<td class="${cls}" data-test="${esc(test)}" data-column="${esc(column)}" data-runs="${cell.runs}" data-failures="${cell.failures}">` +
    `<b>${cell.failures}/${cell.runs}</b> failed<br><span class="rate">${pct(cell.rate)} [${pct(cell.low)}–${pct(cell.high)}]</span>` +
    `${badges.length ? `<br>${badges.join(' ')}` : ''}</td>`
  );
}

function table(id: string, head: string[], rows: string[], empty: string): string {
  if (!rows.length) return `<p class="none" id="${id}-none">${esc(empty)}</p>`;
  return `<table id="${id}"><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

const PALETTE = [
  '#1f77b4',
  '#2ca02c',
  '#9467bd',
  '#ff7f0e',
  '#17becf',
  '#8c564b',
  '#e377c2',
  '#7f7f7f',
  '#bcbd22',
];

/** One line chart per measurement name: x = run (night), y = the run's mean, a line per board. */
function chart(name: string, series: TimingSeries[]): string {
  const W = 760;
  const H = Math.max(280, 24 + series.length * 18 + 48);
  const m = { l: 64, r: 200, t: 24, b: 48 };
  const runs = [...new Set(series.flatMap((s) => s.points.map((p) => p.run)))].sort((a, b) => a - b);
  const dates = new Map(
    series.flatMap((s) => s.points.map((p) => [p.run, p.startedAt.slice(0, 10)] as const)),
  );
  const values = series.flatMap((s) => s.points.map((p) => p.value));
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (hi === lo) {
    lo = lo === 0 ? -1 : lo * 0.9;
    hi = hi === 0 ? 1 : hi * 1.1;
  }
  const pad = (hi - lo) * 0.08;
  lo -= pad;
  hi += pad;
  const x = (run: number) =>
    m.l +
    (runs.length === 1 ? (W - m.l - m.r) / 2 : (runs.indexOf(run) / (runs.length - 1)) * (W - m.l - m.r));
  const y = (v: number) => m.t + (1 - (v - lo) / (hi - lo)) * (H - m.t - m.b);
  const parts: string[] = [];
  for (let i = 0; i <= 4; i++) {
    const v = lo + ((hi - lo) * i) / 4;
    parts.push(
      `<line x1="${m.l}" x2="${W - m.r}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" class="grid"/>`,
    );
    parts.push(
      `<text x="${m.l - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${esc(fmt(Number(v.toPrecision(3))))}</text>`,
    );
  }
  // Date labels are about 70 px wide: one every `step` nights, and the last one if it has room.
  const plotW = W - m.l - m.r;
  const step = Math.max(1, Math.ceil(runs.length / Math.floor(plotW / 80)));
  const perRun = runs.length > 1 ? plotW / (runs.length - 1) : plotW;
  runs.forEach((run, i) => {
    const shown = i % step === 0 || (i === runs.length - 1 && (i % step) * perRun >= 80);
    if (!shown) return;
    parts.push(`<text x="${x(run).toFixed(1)}" y="${H - m.b + 16}" text-anchor="middle">#${run}</text>`);
    parts.push(
      `<text x="${x(run).toFixed(1)}" y="${H - m.b + 30}" text-anchor="middle" class="date">${esc(dates.get(run) ?? '')}</text>`,
    );
  });
  series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length]!;
    const pts = s.points.map((p) => `${x(p.run).toFixed(1)},${y(p.value).toFixed(1)}`).join(' ');
    parts.push(
      `<polyline points="${pts}" fill="none" stroke="${color}" stroke-width="2"><title>${esc(s.board)}</title></polyline>`,
    );
    s.points.forEach((p, j) => {
      const bad = s.verdict === 'regression' && j === s.points.length - 1;
      parts.push(
        `<circle cx="${x(p.run).toFixed(1)}" cy="${y(p.value).toFixed(1)}" r="${bad ? 6 : 3}" fill="${bad ? '#d00' : color}"${bad ? ' stroke="#000" stroke-width="1.5" class="timing-regression"' : ''}>` +
          `<title>${esc(`${s.board} run ${p.run}: ${fmt(p.value)} ${s.unit}`)}</title></circle>`,
      );
    });
    parts.push(`<rect x="${W - m.r + 12}" y="${m.t + i * 18}" width="12" height="4" fill="${color}"/>`);
    parts.push(
      `<text x="${W - m.r + 30}" y="${m.t + i * 18 + 6}">${esc(`${s.board} ${bl(s.bootloader)}`)}${s.verdict === 'regression' ? ' ▲' : ''}</text>`,
    );
  });
  const unit = series[0]?.unit ?? '';
  parts.push(
    `<text x="14" y="${m.t + (H - m.t - m.b) / 2}" transform="rotate(-90 14 ${m.t + (H - m.t - m.b) / 2})" text-anchor="middle">${esc(unit)}</text>`,
  );
  return `<figure><figcaption>${esc(name)} (${esc(unit)}, ${series[0]?.better === 'higher' ? 'higher' : 'lower'} is better)</figcaption><svg class="chart" data-measurement="${esc(name)}" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" xmlns="http://www.w3.org/2000/svg">${parts.join('')}</svg></figure>`;
}

const CSS = `
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:6px 0}th,td{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}
th{background:#f3f3f3}td.pass{background:#e6f4e6}td.fail{background:#f9dcdc}td.partial{background:#fff3cd}td.empty{color:#999}
.rate{color:#555;font-size:12px}.badge{font-size:11px;border-radius:3px;padding:0 4px;white-space:nowrap}
.badge.flaky{background:#ffe08a}.badge.board{background:#cfe2ff}.badge.known{background:#e2e3e5}
.verdict-pass{background:#e6f4e6;padding:8px 12px;border-left:6px solid #2a2}.verdict-fail{background:#f9dcdc;padding:8px 12px;border-left:6px solid #c22}
tr.regression td.v{color:#b00;font-weight:bold}tr.fixed td.v{color:#070;font-weight:bold}tr.flaky td.v{color:#a60}
.meta{color:#666}.none{color:#666;font-style:italic}
svg.chart text{font-size:11px;fill:#333}svg.chart text.date{fill:#888;font-size:10px}svg.chart line.grid{stroke:#eee}
figure{margin:8px 0 20px}figcaption{font-weight:600}
ul.rules{color:#444;font-size:13px}
`;

/** Renders the analysis as one self-contained HTML document. */
export function renderQualificationPage(a: Analysis, options: PageOptions = {}): string {
  const title = options.title ?? 'Bootloader qualification';
  const runs = a.window.runs;
  const span = runs.length
    ? `${runs.length} run${runs.length > 1 ? 's' : ''}, #${runs[0]!.id} (${runs[0]!.startedAt.slice(0, 16).replace('T', ' ')}) to #${runs.at(-1)!.id} (${runs.at(-1)!.startedAt.slice(0, 16).replace('T', ' ')})`
    : 'no runs';
  const verdict =
    a.verdict === 'pass'
      ? `<div class="verdict-pass" id="verdict" data-verdict="pass"><b>PASS</b>: no unknown regression or failure.</div>`
      : `<div class="verdict-fail" id="verdict" data-verdict="fail"><b>FAIL</b>:<ul>${a.reasons.map((r) => `<li>${esc(r)}</li>`).join('')}</ul></div>`;

  const verdictRows = a.comparisons.map(
    (c) =>
      `<tr class="${c.verdict}" data-test="${esc(c.test)}" data-part="${esc(c.part)}" data-baseline="${bl(c.baseline)}" data-candidate="${bl(c.candidate)}" data-verdict="${c.verdict}">` +
      `<td>${esc(c.test)}</td><td>${esc(c.part)}</td><td>${bl(c.baseline)} → ${bl(c.candidate)}</td><td class="v">${c.verdict}${c.verdict === 'regression' ? (c.known ? ' (known)' : ' (UNKNOWN)') : ''}</td>` +
      `<td>${c.p === null ? '–' : c.p.toPrecision(2)}</td><td>${esc(c.note)}</td><td>${esc(c.knownIssues.join(', '))}</td></tr>`,
  );

  const matrixHead = `<tr><th>Test</th>${a.columns.map((c) => `<th data-column="${esc(c.key)}">${esc(c.part)} <b>${bl(c.bootloader)}</b><br><span class="meta">${esc(c.boards.join(', '))}</span></th>`).join('')}</tr>`;
  const matrixRows = a.matrix.map(
    (r) =>
      `<tr data-test="${esc(r.test)}"><th>${esc(r.test)}</th>${a.columns.map((c) => cellHtml(r.test, c.key, r.cells[c.key])).join('')}</tr>`,
  );
  const matrix = a.matrix.length
    ? `<table id="matrix"><thead>${matrixHead}</thead><tbody>${matrixRows.join('')}</tbody></table>`
    : `<p class="none" id="matrix-none">No outcomes recorded.</p>`;

  const boardRows = a.boardProblems.map(
    (b) =>
      `<tr data-board="${esc(b.board)}" data-test="${esc(b.test)}"><td>${esc(b.board)}</td><td>${esc(b.part)} ${bl(b.bootloader)}</td><td>${esc(b.test)}</td>` +
      `<td>${b.failures}/${b.runs}</td><td>${esc(b.siblings.join(', '))} (${b.siblingRuns} runs, no failure)</td><td>${b.p.toPrecision(2)}</td><td>${esc(b.errorCodes.join(', '))}</td><td>${b.known ? `known: ${esc(b.knownIssues.join(', '))}` : 'UNKNOWN'}</td></tr>`,
  );
  const nightRows = a.nightOverNight.map(
    (n) =>
      `<tr class="${n.change}" data-board="${esc(n.board)}" data-test="${esc(n.test)}" data-change="${n.change}"><td>${esc(n.board)}</td><td>${esc(n.part)} ${bl(n.bootloader)}</td><td>${esc(n.test)}</td>` +
      `<td class="v">${n.change === 'regression' ? `passed in #${n.previousRun}, fails in #${n.run}` : `failed in #${n.previousRun}, passes in #${n.run}`}</td><td>${esc(n.errorCode ?? '')}</td>` +
      `<td>${n.boardProblem ? 'board problem' : ''}${n.known ? ` known: ${esc(n.knownIssues.join(', '))}` : n.change === 'regression' ? ' UNKNOWN' : ''}</td></tr>`,
  );
  const knownRows = a.knownIssues.map(
    (k) =>
      `<tr data-issue="${esc(k.id)}" data-status="${k.status}"><td>${esc(k.id)}</td><td>${esc(k.title)}</td><td>${esc(k.source)}</td><td>${k.status === 'possibly-fixed' ? 'possibly fixed' : k.status}</td>` +
      `<td>${k.failures}/${k.runs}</td><td>${esc(k.boards.join(', '))}</td><td>${k.lastRun ?? '–'}</td></tr>`,
  );
  const failureRows = a.latestFailures.map(
    (f) =>
      `<tr data-board="${esc(f.board)}" data-test="${esc(f.test)}"><td>#${f.run}</td><td>${esc(f.board)}</td><td>${esc(f.part)} ${bl(f.bootloader)}</td><td>${esc(f.test)}</td><td>${f.status}</td>` +
      `<td>${esc(f.errorCode ?? '')}</td><td>${f.boardProblem ? 'board problem' : ''}</td><td>${f.known ? `known: ${esc(f.knownIssues.join(', '))}` : 'UNKNOWN'}</td></tr>`,
  );
  const timingRows = a.timing.map(
    (t) =>
      `<tr data-board="${esc(t.board)}" data-measurement="${esc(t.name)}" data-verdict="${t.verdict}" class="${t.verdict === 'regression' ? 'regression' : ''}"><td>${esc(t.name)}</td><td>${esc(t.board)}</td><td>${bl(t.bootloader)}</td>` +
      `<td>${fmt(t.latest)} ${esc(t.unit)}</td><td>${fmt(t.mean)} ± ${fmt(t.sd)}</td><td>${fmt(t.limit)}</td><td>${t.points.length}</td><td class="v">${t.verdict}${t.known && t.verdict === 'regression' ? ` (known: ${esc(t.knownIssues.join(', '))})` : ''}</td></tr>`,
  );
  const byName = new Map<string, TimingSeries[]>();
  for (const t of a.timing) byName.set(t.name, [...(byName.get(t.name) ?? []), t]);
  const charts = [...byName].map(([name, series]) => chart(name, series)).join('');

  const r = a.rules;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${esc(title)}</title><style>${CSS}</style></head>
<body>
<h1>${esc(title)}</h1>
<p class="meta">Generated ${esc(a.generatedAt)} from ${esc(a.store)}; ${esc(span)}${a.window.since !== null ? ` (since run #${a.window.since})` : ''}.</p>
${verdict}
<h2>Verdicts</h2>
${table('verdicts', ['Test', 'Part', 'Baseline → candidate', 'Verdict', 'p (Fisher)', 'Why', 'Known issues'], verdictRows, 'No two bootloader versions of one part to compare.')}
<h2>Regression matrix</h2>
<p class="meta">Failures / executions per test and bootloader version, failure rate with its Wilson 95% interval. Board problems are left out of the counts.</p>
${matrix}
<h2>Board problems</h2>
${table('board-problems', ['Board', 'Part / bootloader', 'Test', 'Failures', 'Siblings that pass', 'p', 'Errors', 'Known'], boardRows, 'None: no failure confined to one board.')}
<h2>Night over night</h2>
${table('night-over-night', ['Board', 'Part / bootloader', 'Test', 'Change', 'Error', 'Note'], nightRows, 'No test changed between the last two runs of a board.')}
<h2>Known issues</h2>
${table('known-issues', ['Id', 'Issue', 'Source', 'Status', 'Failures / executions', 'Boards', 'Last run'], knownRows, 'No known issues listed (boards.yaml knownIssues:).')}
<h2>Failures in the latest run of each board</h2>
${table('latest-failures', ['Run', 'Board', 'Part / bootloader', 'Test', 'Status', 'Error', 'Board problem', 'Known'], failureRows, 'No failures.')}
<h2>Timing</h2>
${table('timing', ['Measurement', 'Board', 'Bootloader', 'Latest', 'Previous mean ± sd', 'Limit', 'Runs', 'Verdict'], timingRows, 'No measurements recorded.')}
${charts}
<h2>Rules</h2>
<ul class="rules">
<li>Regression: the candidate fails more than the baseline, with Fisher's exact test p &lt; ${r.alpha}, or the baseline passed and the candidate failed every execution (at least ${r.minRuns} each). Fixed is the mirror image. Flaky: a board both passed and failed the test on the candidate.</li>
<li>Board problem: failures on one board while its siblings (same part and bootloader) never fail the test, and the board fails at least half its executions or differs by Fisher's test.</li>
<li>Timing regression: the latest run beyond both mean ${r.timing.sigmas !== 1 ? `+ ${r.timing.sigmas}` : '+'} sd and ${Math.round(r.timing.margin * 100)}% beyond the previous extreme of the last ${r.timing.historyRuns} runs (at least ${r.timing.minHistory}).</li>
<li>Known issue: reproduced when a failure in its scope is in the latest execution; possibly fixed when its tests ran and passed there. Only failures not listed as known fail the verdict.</li>
</ul>
</body></html>
`;
}

/**
 * Analyses the store and writes `<dir>/qualification/index.html` (`dir` is the reports directory);
 * returns the file written and the analysis it shows.
 */
export function writeQualificationPage(
  store: ResultsStore,
  dir: string,
  options: AnalyseOptions & PageOptions = {},
): { file: string; analysis: Analysis } {
  const analysis = analyse(store, options);
  const outDir = path.join(path.resolve(dir), 'qualification');
  const file = path.join(outDir, 'index.html');
  try {
    mkdirSync(outDir, { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, renderQualificationPage(analysis, options));
    renameSync(tmp, file);
  } catch (e) {
    throw new ResultsError(
      'E_REPORT_WRITE',
      `${file}: cannot write the qualification page: ${(e as Error).message}`,
      {
        cause: e,
        details: { file },
      },
    );
  }
  return { file, analysis };
}
