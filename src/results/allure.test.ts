import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { pruneAllureResults } from './allure.ts';

function write(dir: string, file: string, body: unknown): void {
  writeFileSync(path.join(dir, file), typeof body === 'string' ? body : JSON.stringify(body));
}

describe('pruneAllureResults', () => {
  it('keeps the newest result of each test and board, with its attachments, and drops the superseded ones', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'allure-results-'));
    // Last night: the weak-bit board failed with a trace; tonight it failed again with a new trace.
    write(dir, 'a1-result.json', {
      uuid: 'a1',
      historyId: 'flash:custom',
      stop: 1000,
      attachments: [{ source: 'old-trace-attachment.pcap' }],
    });
    write(dir, 'old-trace-attachment.pcap', 'x');
    write(dir, 'a2-result.json', {
      uuid: 'a2',
      historyId: 'flash:custom',
      stop: 2000,
      steps: [{ steps: [{ attachments: [{ source: 'new-dump-attachment.txt' }] }] }],
    });
    write(dir, 'new-dump-attachment.txt', 'y');
    // Another board's result, older than both: not superseded by them.
    write(dir, 'b1-result.json', { uuid: 'b1', historyId: 'flash:d2', stop: 500 });
    // A run still writing: its attachment is there before its result, and a result half written.
    write(dir, 'inflight-attachment.pcap', 'z');
    write(dir, 'c1-result.json', '{"uuid": "c1", "histo');

    expect(pruneAllureResults(dir)).toEqual({ removedResults: 1, removedAttachments: 1 });
    expect(readdirSync(dir).sort()).toEqual([
      'a2-result.json',
      'b1-result.json',
      'c1-result.json',
      'inflight-attachment.pcap',
      'new-dump-attachment.txt',
    ]);
    // Nothing left to prune the second time.
    expect(pruneAllureResults(dir)).toEqual({ removedResults: 0, removedAttachments: 0 });
    expect(existsSync(path.join(dir, 'a2-result.json'))).toBe(true);
  });

  it('keeps an attachment the newest result still names, and never follows a path out of the folder', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'allure-results-'));
    const outside = path.join(mkdtempSync(path.join(tmpdir(), 'outside-')), 'keep.txt');
    writeFileSync(outside, 'keep');
    write(dir, 'a1-result.json', {
      historyId: 't',
      stop: 1,
      attachments: [{ source: 'shared-attachment.txt' }, { source: outside }],
    });
    write(dir, 'a2-result.json', {
      historyId: 't',
      stop: 2,
      attachments: [{ source: 'shared-attachment.txt' }],
    });
    write(dir, 'shared-attachment.txt', 's');
    expect(pruneAllureResults(dir)).toEqual({ removedResults: 1, removedAttachments: 0 });
    expect(readdirSync(dir).sort()).toEqual(['a2-result.json', 'shared-attachment.txt']);
    expect(existsSync(outside)).toBe(true);
  });
});
