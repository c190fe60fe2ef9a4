import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as allure from 'allure-js-commons';
import { afterAll, beforeAll, describe, expect, it, type TaskMeta } from 'vitest';
import { loadConfig } from '../../src/farm/config.ts';
import type { BoardConfig } from '../../src/farm/schema.ts';
import { getPart } from '../../src/parts/catalogue.ts';
import '../meta.ts';
import {
  buildVm,
  DEFAULT_CACHE_DIR,
  missingPrerequisite,
  REPO_ROOT,
  runVm,
  type VmImage,
  type VmRun,
  warmCompileCache,
} from './vm.ts';

/**
 * The end-to-end lane: a Linux guest (QEMU, TCG) with vhci-hcd attaches the virtual boards that
 * `stm32-hil sim serve` exports over USB/IP, and the real dfu-util and the harness's own node-usb backend
 * drive them through the kernel's USB stack (guest.sh). This file boots the guest once and checks what it
 * recorded; each board's tests form one describe block, reported like any suite's (harness/e2e/reporter.ts).
 */

const HERE = path.join(REPO_ROOT, 'harness/e2e');
const LANE_CONFIG = loadConfig(path.join(HERE, 'boards.yaml'));
const TIME_SCALE = LANE_CONFIG.farm?.timeScale ?? 1;
const SUITE = 'e2e-usbip';
const VM_TIMEOUT_MS = 15 * 60_000;

const missing = await missingPrerequisite();
let image: VmImage | undefined;
let unavailable = missing;
if (!unavailable) {
  try {
    image = await buildVm({ initScript: path.join(HERE, 'init.sh'), log: (l) => console.info(`[e2e] ${l}`) });
  } catch (e) {
    unavailable = `the guest image cannot be built: ${e instanceof Error ? e.message : String(e)}`;
  }
}
const inCi = process.env.CI === 'true';

interface Step {
  rc: number;
  ms: number;
}
const steps = new Map<string, Step>();
const facts = new Map<string, string>();
let out = '';
let vm: VmRun | undefined;

function log(name: string): string {
  const file = path.join(out, `${name}.log`);
  return existsSync(file) ? readFileSync(file, 'utf8') : '';
}
function file(name: string): Buffer {
  return readFileSync(path.join(out, name));
}
function step(name: string): Step {
  const s = steps.get(name);
  if (!s) throw new Error(`the guest never ran step "${name}" (guest log:\n${log('guest').slice(-3000)})`);
  return s;
}
function expectStep(name: string, rc = 0): string {
  const s = step(name);
  const text = log(name);
  expect(s.rc, `${name} exit code; its output:\n${text.slice(-4000)}`).toBe(rc);
  return text;
}
function board(id: string): BoardConfig {
  return LANE_CONFIG.boards.find((b) => b.id === id)!;
}
/** Names the board for the reporters (results store, Allure), as the farm's suites do. */
async function label(task: { meta: TaskMeta }, b: BoardConfig): Promise<void> {
  task.meta.hil = { board: b.id, suite: SUITE, details: { transport: 'usbip', timeScale: TIME_SCALE } };
  await allure.parentSuite(b.id);
  await allure.suite(SUITE);
  await allure.label('board', b.id);
  await allure.label('part', b.part);
  await allure.label('bootloader', `0x${b.virtual!.bootloader.toString(16).toUpperCase()}`);
}
function dfuUtilAlternates(listing: string, port: string): string[] {
  return [...listing.matchAll(/^Found DFU: \[0483:df11\] .*path="([^"]+)", alt=(\d+), name="([^"]*)"/gm)]
    .filter((m) => m[1] === port)
    .sort((a, b) => Number(a[2]) - Number(b[2]))
    .map((m) => m[3]!);
}

if (unavailable && inCi) {
  describe(`end-to-end lane over USB/IP (${SUITE})`, () => {
    it('can run on this CI machine (CI=true requires it)', () => {
      throw new Error(`the e2e lane cannot run: ${unavailable}`);
    });
  });
} else if (unavailable) {
  console.warn(`[e2e] lane skipped: ${unavailable}`);
  describe.skip(`end-to-end lane over USB/IP skipped: ${unavailable}`, () => {
    it('boots the guest', () => {});
  });
} else {
  beforeAll(async () => {
    out = mkdtempSync(path.join(tmpdir(), 'stm32-hil-e2e-'));
    const compileCache = path.join(DEFAULT_CACHE_DIR, 'node-compile-cache');
    const cli = [path.join(REPO_ROOT, 'bin/stm32-hil.js'), '--config', path.join(HERE, 'boards.yaml')];
    await warmCompileCache(compileCache, [
      [...cli, 'sim', 'serve', '--help'],
      [...cli, '--json', 'dfu', 'list'],
    ]);
    console.info(
      `[e2e] timing model: the lane's virtual boards run ${TIME_SCALE}x faster than real hardware (harness/e2e/boards.yaml farm.timeScale), so reported poll timeouts are ${TIME_SCALE}x shorter`,
    );
    console.info(
      `[e2e] booting ${image!.kernelPackage} (${image!.kernelFormat}) under QEMU TCG; guest results in ${out}`,
    );
    vm = await runVm({
      image: image!,
      shares: [
        { tag: 'hostroot', path: '/', readonly: true },
        { tag: 'repo', path: REPO_ROOT, readonly: true },
        { tag: 'out', path: out, readonly: false },
      ],
      env: {
        E2E_SCRIPT: path.join(HERE, 'guest.sh'),
        E2E_REPO: REPO_ROOT.replace(/\/$/, ''),
        E2E_COMPILE_CACHE: compileCache,
        E2E_CI: inCi ? 'true' : 'false',
      },
      timeoutMs: VM_TIMEOUT_MS,
    });
    const jsonl = existsSync(path.join(out, 'steps.jsonl'))
      ? readFileSync(path.join(out, 'steps.jsonl'), 'utf8')
      : '';
    for (const line of jsonl.split('\n').filter(Boolean)) {
      const r = JSON.parse(line) as {
        step?: string;
        rc?: number;
        ms?: number;
        fact?: string;
        value?: string;
      };
      if (r.step) steps.set(r.step, { rc: r.rc!, ms: r.ms! });
      if (r.fact) facts.set(r.fact, r.value!);
    }
    const up = /E2E-GUEST-UP uptime=([\d.]+)s/.exec(vm.console)?.[1];
    const done = /E2E-GUEST-DONE exit=(\d+) uptime=([\d.]+)s/.exec(vm.console);
    console.info(
      `[e2e] wall time ${(vm.wallMs / 1000).toFixed(1)} s: guest up after ${up ?? '?'} s, guest script done at ${done?.[2] ?? '?'} s (exit ${done?.[1] ?? '?'})`,
    );
    for (const [name, s] of steps)
      console.info(`[e2e]   ${name.padEnd(26)} rc=${s.rc} ${(s.ms / 1000).toFixed(2)} s`);
  }, VM_TIMEOUT_MS + 60_000);

  afterAll(() => {
    if (out && !process.env.STM32_HIL_E2E_KEEP) rmSync(out, { recursive: true, force: true });
    else if (out) console.info(`[e2e] kept ${out}`);
  });

  describe('the guest', () => {
    it('booted, ran the lane script to the end and powered off', () => {
      expect(vm, 'QEMU run').toBeDefined();
      expect(
        vm!.timedOut,
        `QEMU still running after ${VM_TIMEOUT_MS} ms; console:\n${vm!.console.slice(-3000)}`,
      ).toBe(false);
      expect(
        existsSync(path.join(out, 'init-failed')) ? readFileSync(path.join(out, 'init-failed'), 'utf8') : '',
      ).toBe('');
      expect(vm!.console).toMatch(/E2E-GUEST-UP/);
      const exit = existsSync(path.join(out, 'guest-exit'))
        ? readFileSync(path.join(out, 'guest-exit'), 'utf8').trim()
        : 'none';
      expect(exit, `guest script exit; its log:\n${log('guest').slice(-4000)}`).toBe('0');
    });

    it('sim serve listed every lane board to usbip, and stopped cleanly on SIGTERM', () => {
      const list = expectStep('usbip-list');
      for (const [i, b] of LANE_CONFIG.boards.entries()) {
        expect(list).toMatch(
          new RegExp(`1-${i + 1}: STMicroelectronics : STM Device in DFU Mode \\(0483:df11\\)`),
        );
        expect(list).toContain(`/sys/devices/stm32-hil/virtual/${b.id}`);
      }
      expect(readFileSync(path.join(out, 'serve.out'), 'utf8')).toMatch(
        new RegExp(`${TIME_SCALE}x faster than real hardware`),
      );
      expect(facts.get('serve-exit')).toBe('0');
    });
  });

  describe(`h743-revY-d2 (bootloader 0xD2) over USB/IP`, () => {
    const b = board('h743-revY-d2');
    const part = getPart(b.part);

    it('usbip attach makes it a USB device the kernel enumerates', async ({ task }) => {
      await label(task, b);
      expectStep('attach-1-1');
      expect(facts.get('port-1-1')).toMatch(/^\d+-\d+(\.\d+)*$/);
    });

    it('dfu-util -l lists it with the ROM alternate setting strings and serial', async ({ task }) => {
      await label(task, b);
      const listing = expectStep('dfu-util-list');
      expect(dfuUtilAlternates(listing, facts.get('port-1-1')!)).toEqual(
        part.bootloader.alternates.map((a) => a.name),
      );
      expect(listing).toMatch(
        new RegExp(
          `ver=0200, devnum=\\d+, cfg=1, intf=0, path="${facts.get('port-1-1')}", alt=0, name="@Internal Flash   /0x08000000/16\\*128Kg", serial="200364500000"`,
        ),
      );
    });

    it('dfu-util -D writes 160 KiB across two sectors and -U reads it back byte for byte', async ({
      task,
    }) => {
      await label(task, b);
      const dn = expectStep('dfu-util-download');
      expect(dn).toMatch(/File downloaded successfully|Download done/);
      expectStep('dfu-util-upload');
      const image = file('image.bin');
      expect(image.length).toBe(163840);
      expect(file('readback.bin').equals(image)).toBe(true);
    });

    it('stm32-hil flash --verify writes and verifies through node-usb, selecting the device by port path', async ({
      task,
    }) => {
      await label(task, b);
      if (facts.get('harness-flash') === 'missing')
        throw new Error('the guest found no `stm32-hil flash` command');
      const text = expectStep('harness-flash');
      const json = JSON.parse(text.slice(text.indexOf('{'), text.lastIndexOf('}') + 1)) as {
        verify: { ok: boolean } | null;
        target: string;
      };
      expect(json.verify?.ok).toBe(true);
      expect(json.target).toContain(facts.get('port-1-1')!);
    });

    it('without access to /dev/bus/usb the harness says how to grant it (udev rule), exit 3, no stack trace', async ({
      task,
    }) => {
      await label(task, b);
      const text = expectStep('harness-permission', 3);
      expect(text).toMatch(/E_USB_PERMISSION|permission denied/i);
      expect(text).toMatch(/udev/);
      expect(text).not.toMatch(/^\s+at /m);
    });

    it('after a DFU leave the device leaves the bus (the USB/IP connection ends)', async ({ task }) => {
      await label(task, b);
      const leave = expectStep('harness-leave');
      // 'left': the device detached at once; 'manifesting': it answered dfuMANIFEST and then went away.
      expect(leave).toMatch(/"left"\s*:\s*"(left|manifesting)"/);
      expect(facts.get('gone-after-leave')).toBe('yes');
      const serveLog = readFileSync(path.join(out, 'serve.err'), 'utf8');
      expect(serveLog).toMatch(/1-1 h743-revY-d2: left the bus \(now application\)/);
      expect(serveLog).toMatch(/1-1 h743-revY-d2: USB\/IP connection ended \(device left\)/);
    });

    it('after a reset it enumerates again at the same port path, where stm32-hil read finds it and reads what flash wrote', async ({
      task,
    }) => {
      await label(task, b);
      expect(readFileSync(path.join(out, 'serve.err'), 'utf8')).toMatch(
        /h743-revY-d2: reset \(now bootloader\)/,
      );
      expect(facts.get('port-1-1-again')).toBe(facts.get('port-1-1'));
      expectStep('harness-read');
      expect(file('harness-readback.bin').equals(file('harness.bin'))).toBe(true);
    });
  });

  describe('f407-disco (bootloader 0x31) over USB/IP', () => {
    const b = board('f407-disco');
    const part = getPart(b.part);

    it('dfu-util -l lists its four alternate settings', async ({ task }) => {
      await label(task, b);
      const listing = expectStep('dfu-util-list-f407');
      expect(dfuUtilAlternates(listing, facts.get('port-1-3')!)).toEqual(
        part.bootloader.alternates.map((a) => a.name),
      );
      expect(listing).toMatch(/ver=2200/);
    });

    it('dfu-util -D then -U reads 32 KiB back byte for byte (2 KiB transfers)', async ({ task }) => {
      await label(task, b);
      expectStep('dfu-util-download-f407');
      expectStep('dfu-util-upload-f407');
      expect(file('f407-readback.bin').equals(file('f407.bin'))).toBe(true);
    });
  });

  describe('h743-revV-90 (bootloader 0x90) over USB/IP', () => {
    const b = board('h743-revV-90');

    it('dfu-util -s 0x08000000:force:mass-erase succeeds', async ({ task }) => {
      await label(task, b);
      const text = expectStep('dfu-util-mass-erase-90');
      expect(text).toMatch(/mass erase/i);
    });

    it('a bank 2 download hangs in the page erase the way dfu-util ticket 88 shows (bounded by timeout)', async ({
      task,
    }) => {
      await label(task, b);
      const text = expectStep('dfu-util-bank2-90', 124); // killed by `timeout 15`
      const at = text.indexOf('Erasing page size 131072 at address 0x08100000');
      expect(at, text.slice(-3000)).toBeGreaterThanOrEqual(0);
      const polls = [...text.slice(at).matchAll(/Poll timeout (\d+) ms/g)].map((m) => Number(m[1]));
      // The device stays dfuDNBUSY and keeps asking for the same wait: dfu-util polls until it is killed.
      expect(polls.length).toBeGreaterThanOrEqual(10);
      expect(new Set(polls).size).toBe(1);
      expect(polls[0]).toBe(Math.round(1000 / TIME_SCALE));
      expect(text.slice(at)).not.toMatch(/File downloaded successfully/);
    });
  });
}
