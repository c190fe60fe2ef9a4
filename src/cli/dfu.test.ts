import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { Command } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { isHilError } from '../errors.ts';
import { loadConfig } from '../farm/config.ts';
import { RDP_LEVEL1, VirtualChip } from '../sim/chip.ts';
import { chipStateFile } from '../sim/paths.ts';
import { createContext } from './context.ts';
import { registerDfuCommands } from './dfu.ts';

const FIXTURES = new URL('../../harness/fixtures/firmware/out/', import.meta.url).pathname;
const dir = mkdtempSync(path.join(tmpdir(), 'cli-dfu-'));
const config = path.join(dir, 'boards.yaml');
// timeScale 1000: the virtual ROMs' waits (0.9 s erases) shrink to about a millisecond.
writeFileSync(
  config,
  `farm: { stateDir: state, timeScale: 1000 }
boards:
  - id: y
    part: stm32h743
    virtual: { chipRevision: Y, bootloader: 0xD2 }
  - id: weak
    part: stm32h743
    virtual: { chipRevision: V, bootloader: 0x92, faults: { seed: 1, weakBits: [{ address: 0x08000002, mask: 0x08 }] } }
`,
);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the dfu command group alone (exit code from the error kind, as main.ts does). */
async function run(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const out = new PassThrough().on('data', (c: Buffer) => {
    stdout += c.toString();
  });
  const err = new PassThrough().on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const program = new Command('stm32-hil').option('--json').option('--config <file>').exitOverride();
  const ctx = createContext(() => program.opts(), new AbortController().signal, out, err);
  registerDfuCommands(program, ctx);
  for (const c of program.commands) c.exitOverride();
  let code = 0;
  try {
    await program.parseAsync(['--config', config, ...args], { from: 'user' });
  } catch (e) {
    if (!isHilError(e)) throw e;
    stderr += `error ${e.code}: ${e.message}\n${e.hint ? `  hint: ${e.hint}\n` : ''}`;
    code = e.exitCode;
  }
  return { code, stdout, stderr };
}

describe('stm32-hil dfu list / flash / read / verify on virtual boards', () => {
  it('dfu list --json: the virtual boards, and a clear word on the missing USB subsystem', async () => {
    const r = await run('--json', 'dfu', 'list');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.virtual.map((b: { board: string }) => b.board)).toEqual(['y', 'weak']);
    expect(j.virtual[0]).toMatchObject({
      portPath: 'virtual:y',
      vid: '0483',
      pid: 'df11',
      serial: '200364500000',
    });
    if (!existsSync('/sys/bus/usb/devices'))
      expect(j.usb).toMatchObject({ available: false, error: expect.stringMatching(/no USB subsystem/) });
  });

  it('dfu list: a boards.yaml that was named but is missing or wrong is an error (exit 2)', async () => {
    const missing = await run('--config', path.join(dir, 'nope.yaml'), 'dfu', 'list');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/E_CONFIG_NOT_FOUND: .*nope\.yaml: no such file/);
    const bad = path.join(dir, 'bad.yaml');
    writeFileSync(bad, 'boards:\n  - id: a\n    prt: x\n');
    const wrong = await run('--config', bad, 'dfu', 'list');
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/E_CONFIG_SCHEMA: .*bad\.yaml:\d+:\d+: boards\[0\]/);
  });

  it('flash --verify --trace: exit 0, a pcapng trace, progress lines on stderr', async () => {
    const trace = path.join(dir, 'flash.pcapng');
    const r = await run('flash', `${FIXTURES}bank2.hex`, '--board', 'y', '--verify', '--trace', trace);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/flashed .*bank2\.hex \(892 bytes\) to board y .*: 2 sector\(s\) erased/);
    expect(r.stdout).toMatch(/verified 892 bytes: no difference/);
    expect(r.stderr).toMatch(/program 100%/);
    expect(readFileSync(trace).readUInt32LE(0)).toBe(0x0a0d0d0a);
  });

  it('read -o writes what was flashed; verify of another image exits 1 with the CubeProgrammer line', async () => {
    const out = path.join(dir, 'read.bin');
    const r = await run('read', '--board', 'y', '--address', '0x08100000', '--length', '64', '-o', out);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(out)).toEqual(readFileSync(`${FIXTURES}bank2.bank2.bin`).subarray(0, 64));
    const v = await run('verify', `${FIXTURES}plain.elf`, '--board', 'y');
    expect(v.code).toBe(1);
    expect(v.stderr).toMatch(
      /Data mismatch found at address 0x080000[0-9A-F]{2} \(byte = 0x[0-9A-F]{2} instead of 0x[0-9A-F]{2}\)/,
    );
    expect(v.stderr).toMatch(/E_DFU_VERIFY_MISMATCH/);
  });

  it('a weak bit on the board: flash --verify exits 1 at 0x08000002', async () => {
    const img = path.join(dir, 'vec.bin');
    writeFileSync(img, Uint8Array.of(0x00, 0x00, 0x08, 0x20, 0x99, 0x02, 0x00, 0x08));
    const r = await run('flash', img, '--board', 'weak', '--verify');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Data mismatch found at address 0x08000002 (byte = 0x00 instead of 0x08)');
  });

  it('unprotect: refused without --force; with it a board at RDP level 1 is erased and readable again', async () => {
    const cfg = loadConfig(config);
    const board = cfg.boards.find((b) => b.id === 'y')!;
    const chip = VirtualChip.open(chipStateFile(cfg, board), {
      part: 'stm32h743',
      chipRevision: 'Y',
      bootloader: 0xd2,
    });
    chip.programFlash(0x08000000, new Uint8Array(32).fill(0x5a));
    chip.setOptions({ rdp: RDP_LEVEL1 });
    chip.close();
    const out = path.join(dir, 'rdp.bin');
    const read = () => run('read', '--board', 'y', '--address', '0x08000000', '--length', '32', '-o', out);

    const locked = await read();
    expect(locked.code).not.toBe(0);
    expect(locked.stderr).toMatch(/RDP level 1/);
    expect(locked.stderr).toMatch(/stm32-hil unprotect --force/);

    const refused = await run('unprotect', '--board', 'y');
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/E_DFU_PERMISSION: a read unprotect needs explicit permission/);

    const done = await run('--json', 'unprotect', '--board', 'y', '--force');
    expect(done.code, done.stderr).toBe(0);
    expect(JSON.parse(done.stdout)).toMatchObject({ readUnprotect: 'accepted' });

    const after = await read();
    expect(after.code, after.stderr).toBe(0);
    expect(readFileSync(out)).toEqual(Buffer.alloc(32, 0xff));
    const reopened = VirtualChip.open(chipStateFile(cfg, board), {
      part: 'stm32h743',
      chipRevision: 'Y',
      bootloader: 0xd2,
    });
    expect(reopened.rdpLevel).toBe(0);
    reopened.close();
  });

  it('usage and input errors exit 2: mass erase without --force, the SRAM4 image, two targets', async () => {
    expect((await run('flash', `${FIXTURES}bank2.elf`, '--board', 'y', '--mass-erase')).code).toBe(2);
    const sram4 = await run('flash', `${FIXTURES}sram4.elf`, '--board', 'y');
    expect(sram4.code).toBe(2);
    expect(sram4.stderr).toMatch(
      /E_DFU_PLAN_OUTSIDE: section \.shared: 64 bytes at 0x38000000-0x3800003F are in SRAM4/,
    );
    expect((await run('flash', `${FIXTURES}bank2.elf`, '--board', 'y', '--usb', '0483:df11')).code).toBe(2);
  });

  it.skipIf(existsSync('/sys/bus/usb/devices'))(
    '--usb on a host without USB exits 3 with the reason',
    async () => {
      const r = await run(
        'read',
        '--usb',
        '0483:df11@1-4.2',
        '--address',
        '0x08000000',
        '--length',
        '16',
        '-o',
        path.join(dir, 'x.bin'),
      );
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(/E_USB_NO_SUBSYSTEM/);
    },
  );
});
