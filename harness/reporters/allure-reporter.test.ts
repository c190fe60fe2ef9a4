import { getMessageAndTraceFromError, getStatusFromError } from 'allure-js-commons/sdk';
import type { TestError } from 'vitest';
import { describe, expect, it } from 'vitest';
import { verifyError } from '../../src/dfu/verify.ts';
import { HilError } from '../../src/errors.ts';
import { allureError } from './allure-reporter.ts';

/** What vitest hands a reporter: the error's own properties, serialised (as processError does). */
function serialised(e: Error): TestError {
  return JSON.parse(JSON.stringify({ ...e, name: e.name, message: e.message, stack: e.stack })) as TestError;
}

const status = (e: Error) => getStatusFromError(allureError(serialised(e)));

describe('Allure status of a failed test on a board', () => {
  it('a verify mismatch is failed, with the expected and actual bytes beside the message', () => {
    const e = verifyError(
      { file: 'fw.hex' },
      {
        ok: false,
        bytes: 1024,
        mismatches: 1,
        sectors: [{ index: 0, start: 0x0800_0000, size: 0x2_0000, mismatches: 1 }],
        first: { address: 0x0800_0002, expected: 0x08, actual: 0x00 },
      },
    );
    // Without the mapping allure-vitest files it as broken, like an exception in the harness.
    expect(getStatusFromError(serialised(e))).toBe('broken');
    expect(status(e)).toBe('failed');
    expect(getMessageAndTraceFromError(allureError(serialised(e)))).toMatchObject({
      message: expect.stringContaining(
        'Data mismatch found at address 0x08000002 (byte = 0x00 instead of 0x08)',
      ),
      expected: '0x08',
      actual: '0x00',
    });
  });

  it('a device error (the 0x90 bank 2 hang) is failed; infrastructure and tool errors stay broken', () => {
    expect(status(new HilError('E_DFU_BUSY_TIMEOUT', 'device stayed in dfuDNBUSY', { kind: 'device' }))).toBe(
      'failed',
    );
    expect(status(new HilError('E_RELAY_NO_ANSWER', 'relay did not answer', { kind: 'infra' }))).toBe(
      'broken',
    );
    expect(status(new HilError('E_STLINK_CLI_NOT_FOUND', 'no CLI', { kind: 'tool' }))).toBe('broken');
    expect(status(new TypeError('x is undefined'))).toBe('broken');
  });

  it('leaves an assertion error as it is', () => {
    let thrown: Error | undefined;
    try {
      expect(1).toBe(2);
    } catch (e) {
      thrown = e as Error;
    }
    const s = serialised(thrown!);
    expect(allureError(s)).toBe(s);
    expect(getStatusFromError(s)).toBe('failed');
  });
});
