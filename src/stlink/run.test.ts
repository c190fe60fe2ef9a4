import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { rejection } from '../util/testing.ts';
import { StlinkError } from './errors.ts';
import { cliFromPath } from './locate.ts';
import { checkRun, runProgrammer } from './run.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'fake-cli-'));

function fakeCli(name: string, script: string, mode = 0o755): string {
  const file = path.join(dir, name);
  writeFileSync(file, `#!/bin/sh\n${script}\n`);
  chmodSync(file, mode);
  return file;
}

/** A process is gone when signalling it fails, or it is a zombie waiting for its reaper. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

async function expectAllGone(pidFile: string): Promise<number[]> {
  const pids = readFileSync(pidFile, 'utf8').split(/\s+/).filter(Boolean).map(Number);
  expect(pids.length).toBeGreaterThanOrEqual(2);
  for (let i = 0; i < 40 && pids.some(alive); i++) await new Promise((r) => setTimeout(r, 50));
  expect(pids.filter(alive)).toEqual([]);
  return pids;
}

const codeOf = (p: Promise<unknown>) => rejection(p, StlinkError);

describe('runProgrammer / checkRun on a misbehaving CLI', () => {
  it('a missing CLI is E_STLINK_CLI_NOT_FOUND', async () => {
    const e = await codeOf(
      runProgrammer(cliFromPath(path.join(dir, 'nope', 'STM32_Programmer_CLI')), ['-l']),
    );
    expect(e.code).toBe('E_STLINK_CLI_NOT_FOUND');
    expect(e.exitCode).toBe(3);
  });

  it('a missing stand-in script is E_STLINK_CLI_NOT_FOUND too', async () => {
    const e = await codeOf(runProgrammer(cliFromPath(path.join(dir, 'gone.js')), ['-l']));
    expect(e.code).toBe('E_STLINK_CLI_NOT_FOUND');
  });

  it('a CLI without the execute bit is E_STLINK_CLI_NOT_EXECUTABLE', async () => {
    const file = fakeCli('noexec', 'echo hi', 0o644);
    const e = await codeOf(runProgrammer(cliFromPath(file), ['-l']));
    expect(e.code).toBe('E_STLINK_CLI_NOT_EXECUTABLE');
  });

  it('a CLI hanging past its deadline is killed with its children, E_STLINK_CLI_DEADLINE', async () => {
    const pidFile = path.join(dir, 'hang.pids');
    const file = fakeCli(
      'hang',
      `echo "STM32CubeProgrammer v2.20.0"\necho $$ > ${pidFile}\nsleep 30 &\necho $! >> ${pidFile}\nwait`,
    );
    const t0 = performance.now();
    const e = await codeOf(
      // 1 s: long enough for a loaded machine to start the script and print its banner.
      runProgrammer(cliFromPath(file), ['-c', 'port=SWD'], { deadlineMs: 1000, graceMs: 300 }),
    );
    expect(e.code).toBe('E_STLINK_CLI_DEADLINE');
    expect(e.details.outputTail).toContain('STM32CubeProgrammer v2.20.0');
    // Killed at the deadline, not when the script's 30 s sleep ends.
    expect(performance.now() - t0).toBeLessThan(10_000);
    await expectAllGone(pidFile);
  });

  it('a CLI that ignores SIGTERM is SIGKILLed after the grace period, children included', async () => {
    const pidFile = path.join(dir, 'stubborn.pids');
    const file = fakeCli(
      'stubborn',
      `trap '' TERM\necho $$ > ${pidFile}\nsleep 30 &\necho $! >> ${pidFile}\nwait`,
    );
    const e = await codeOf(runProgrammer(cliFromPath(file), [], { deadlineMs: 200, graceMs: 200 }));
    expect(e.code).toBe('E_STLINK_CLI_DEADLINE');
    expect(e.details.forcefullyKilled).toBe(true);
    await expectAllGone(pidFile);
  });

  it('cancellation through the AbortSignal kills the run and throws the signal reason', async () => {
    const pidFile = path.join(dir, 'cancel.pids');
    const file = fakeCli('cancel', `echo $$ > ${pidFile}\nsleep 30 &\necho $! >> ${pidFile}\nwait`);
    const ctl = new AbortController();
    setTimeout(() => ctl.abort(new Error('user pressed ^C')), 200);
    await expect(runProgrammer(cliFromPath(file), [], { signal: ctl.signal, graceMs: 200 })).rejects.toThrow(
      'user pressed ^C',
    );
    await expectAllGone(pidFile);
  });

  it('a CLI killed by someone else is E_STLINK_CLI_KILLED', async () => {
    const file = fakeCli('killed', 'echo "STM32CubeProgrammer v2.20.0"\nkill -9 $$');
    const e = await codeOf(runProgrammer(cliFromPath(file), []));
    expect(e.code).toBe('E_STLINK_CLI_KILLED');
    expect(e.details.signal).toBe('SIGKILL');
  });

  it('garbage output with exit code 0 is E_STLINK_OUTPUT_UNRECOGNISED', async () => {
    const file = fakeCli('garbage', 'printf "\\001\\002 segfault? %%%%\\n42\\n"\nexit 0');
    const run = await runProgrammer(cliFromPath(file), []);
    expect(run.exitCode).toBe(0);
    expect(() => checkRun(run)).toThrow(expect.objectContaining({ code: 'E_STLINK_OUTPUT_UNRECOGNISED' }));
  });

  it('an Error: line with exit code 0 fails with the error it names', async () => {
    const file = fakeCli(
      'zero',
      'echo "      STM32CubeProgrammer v2.1.0"\necho "ST-LINK SN  : 0669"\necho "Voltage     : 0,01V"\necho "Error: No STM32 target found!"\nexit 0',
    );
    const run = await runProgrammer(cliFromPath(file), []);
    expect(run.exitCode).toBe(0);
    let err: unknown;
    try {
      checkRun(run);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'E_STLINK_NO_TARGET', kind: 'device' });
    expect((err as StlinkError).details).toMatchObject({
      exitedZeroWithError: true,
      line: 4,
      probe: { voltage: 0.01 },
    });
    expect((err as StlinkError).hint).toMatch(/powered/);
  });

  it('a non-zero exit without an error line is E_STLINK_CLI_FAILED', async () => {
    const file = fakeCli('silent', 'echo "      STM32CubeProgrammer v2.20.0"\nexit 1');
    const run = await runProgrammer(cliFromPath(file), []);
    expect(() => checkRun(run)).toThrow(expect.objectContaining({ code: 'E_STLINK_CLI_FAILED' }));
  });

  it('passes arguments unchanged, and runs .js stand-ins through this Node', async () => {
    const js = path.join(dir, 'echo.js');
    writeFileSync(
      js,
      "process.stdout.write('STM32CubeProgrammer v2.20.0\\nargs=' + JSON.stringify(process.argv.slice(2)) + '\\n');",
    );
    const run = checkRun(await runProgrammer(cliFromPath(js), ['-c', 'port=SWD', 'sn=A B']));
    expect(run.stdout).toContain('args=["-c","port=SWD","sn=A B"]');
    expect(existsSync(js)).toBe(true);
  });
});
