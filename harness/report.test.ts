import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { writeReports } from '../src/cli/results.ts';
import { openStore } from '../src/results/store.ts';
import { recordSyntheticNights, SYNTHETIC_KNOWN_ISSUES } from '../src/results/synthetic.ts';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));

/** The page as headless Chromium renders it (the DOM after layout and any script). */
function renderedDom(file: string): string {
  const profile = mkdtempSync(path.join(tmpdir(), 'chromium-'));
  return execFileSync(
    CHROMIUM!,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--user-data-dir=${profile}`,
      '--dump-dom',
      pathToFileURL(file).href,
    ],
    { timeout: 60_000, stdio: ['ignore', 'pipe', 'ignore'] },
  ).toString();
}

describe.skipIf(!CHROMIUM)(
  'the qualification report in a browser (needs Debian package chromium; .ci/run installs it)',
  () => {
    it('shows the regression matrix with the 0x90 bank 2 regression and the board problem', async () => {
      const dir = mkdtempSync(path.join(tmpdir(), 'report-'));
      const store = openStore(path.join(dir, 'results.sqlite'));
      recordSyntheticNights(store, 4);
      const { file } = await writeReports(
        store,
        dir,
        { knownIssues: SYNTHETIC_KNOWN_ISSUES },
        { allure: false },
      );
      store.close();
      const dom = renderedDom(file);
      // The matrix: one column per part and bootloader version, cells with their counts.
      expect(dom).toMatch(/<th data-column="[^"]*0x90[^"]*"/i);
      expect(dom).toMatch(/<th data-column="[^"]*0xD2[^"]*"/i);
      expect(dom).toMatch(/<td[^>]*data-column="[^"]*0x90[^"]*"[^>]*data-runs="[1-9]/i);
      // The verdicts: bank 2 regresses on 0x90 against 0xD2, and the weak-bit board is a board problem.
      expect(dom).toMatch(/data-baseline="0xD2" data-candidate="0x90" data-verdict="regression"/);
      expect(dom).toMatch(/<tr data-board="h743-custom"/);
      expect(dom).toMatch(/<svg class="chart" data-measurement="/);
    });
  },
);
