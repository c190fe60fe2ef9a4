import { createHash } from 'node:crypto';
import {
  accessSync,
  chmodSync,
  constants,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { execa } from 'execa';
import { HilError } from '../../src/errors.ts';

/**
 * The end-to-end lane's virtual machine: QEMU (TCG) boots the Debian kernel with a tiny busybox initramfs that
 * loads the virtio/9p and USB/IP modules, mounts the host's root file system read-only over virtio-9p and runs a
 * script from this repository inside it (so the guest uses the host's node, dfu-util and usbip, with no image to
 * build). No network device: everything in the guest talks over the guest's own loopback.
 */

export class E2eError extends HilError {
  constructor(code: string, message: string, details: Record<string, unknown> = {}, hint?: string) {
    super(code, message, { kind: 'infra', details, ...(hint ? { hint } : {}) });
  }
}

/** Modules the guest loads, with their dependencies (resolved by depmod/modprobe on the host). */
export const GUEST_MODULES = ['virtio_pci', '9pnet_virtio', '9p', 'vhci-hcd'];

const here = path.dirname(new URL(import.meta.url).pathname);
export const REPO_ROOT = path.resolve(here, '../..');
export const DEFAULT_CACHE_DIR = path.join(REPO_ROOT, 'node_modules/.cache/stm32-hil-e2e');
/** The Node the guest runs (the project's pinned Node 24, the binary bin/stm32-hil.js falls back to). */
export const GUEST_NODE = path.join(REPO_ROOT, 'node_modules/node/bin/node');

export interface VmImage {
  kernel: string;
  /** 'vmlinux' boots in about 3 s under TCG (PVH entry); 'bzImage' spends extra seconds decompressing itself. */
  kernelFormat: 'vmlinux' | 'bzImage';
  kernelPackage: string;
  initrd: string;
}

/** Why the lane cannot run here, or undefined when it can. */
export async function missingPrerequisite(): Promise<string | undefined> {
  if (process.platform !== 'linux' || process.arch !== 'x64')
    return `the lane needs an x86-64 Linux host (this is ${process.platform}/${process.arch})`;
  for (const [tool, pkg] of [
    ['qemu-system-x86_64', 'qemu-system-x86'],
    ['dpkg-deb', 'dpkg'],
    ['xz', 'xz-utils'],
    ['cpio', 'cpio'],
  ] as const) {
    if (!which(tool)) return `${tool} not found (Debian package ${pkg})`;
  }
  for (const tool of ['depmod', 'modprobe'])
    if (!which(tool)) return `${tool} not found (Debian package kmod)`;
  const busybox = which('busybox');
  if (!busybox || !isStaticElf(busybox))
    return 'a statically linked busybox is needed for the initramfs (Debian package busybox-static)';
  if (!process.env.STM32_HIL_E2E_KERNEL_DEB && !which('apt-get'))
    return 'apt-get not found to fetch the kernel package (or set STM32_HIL_E2E_KERNEL_DEB to a linux-image .deb)';
  return undefined;
}

/** PATH lookup that also tries the sbin directories (depmod lives there; a normal user's PATH lacks them). */
export function which(tool: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const p = path.join(dir, tool);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  return undefined;
}

/** True for an ELF executable without a PT_INTERP program header (ELF-64 little-endian layout, System V gABI). */
export function isStaticElf(file: string): boolean {
  const b = readFileSync(file);
  if (b.readUInt32BE(0) !== 0x7f454c46 || b[4] !== 2 || b[5] !== 1) return false;
  const phoff = Number(b.readBigUInt64LE(0x20));
  const phentsize = b.readUInt16LE(0x36);
  const phnum = b.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) {
    if (b.readUInt32LE(phoff + i * phentsize) === 3) return false; // PT_INTERP
  }
  return true;
}

async function run(
  file: string,
  args: string[],
  opts: { cwd?: string; signal?: AbortSignal; input?: Uint8Array; timeoutMs?: number } = {},
) {
  try {
    return await execa(file, args, {
      cwd: opts.cwd,
      cancelSignal: opts.signal,
      // Downloads and unpacking take seconds; a tool that hangs must not hang the lane.
      timeout: opts.timeoutMs ?? 5 * 60_000,
      encoding: opts.input ? 'buffer' : 'utf8',
      ...(opts.input ? { input: opts.input } : {}),
      stripFinalNewline: false,
    });
  } catch (e) {
    const err = e as { shortMessage?: string; stderr?: unknown };
    throw new E2eError(
      'E_E2E_TOOL',
      `${path.basename(file)} ${args.join(' ')} failed: ${err.shortMessage ?? String(e)}`,
      {
        stderr: String(err.stderr ?? '').slice(-2000),
      },
    );
  }
}

/** The Debian kernel package: STM32_HIL_E2E_KERNEL_DEB, else the one linux-image-amd64 depends on, fetched with apt-get download. */
export async function fetchKernelPackage(cacheDir: string, signal?: AbortSignal): Promise<string> {
  const given = process.env.STM32_HIL_E2E_KERNEL_DEB;
  if (given) {
    if (!existsSync(given))
      throw new E2eError('E_E2E_KERNEL', `STM32_HIL_E2E_KERNEL_DEB=${given}: no such file`);
    return path.resolve(given);
  }
  mkdirSync(cacheDir, { recursive: true });
  const deps = await run('apt-cache', ['depends', 'linux-image-amd64'], { signal });
  const name = /Depends:\s*(linux-image-[0-9][^\s]*-amd64)\b/.exec(String(deps.stdout))?.[1];
  if (!name) {
    throw new E2eError(
      'E_E2E_KERNEL',
      'apt-cache knows no linux-image-amd64 dependency',
      {},
      'run apt-get update first (Debian 12 ships linux-image-6.1.0-*-amd64)',
    );
  }
  const cached = readdirSync(cacheDir).find((f) => f.startsWith(`${name}_`) && f.endsWith('.deb'));
  if (cached) return path.join(cacheDir, cached);
  await run('apt-get', ['download', name], { cwd: cacheDir, signal });
  const fetched = readdirSync(cacheDir).find((f) => f.startsWith(`${name}_`) && f.endsWith('.deb'));
  if (!fetched) throw new E2eError('E_E2E_KERNEL', `apt-get download ${name} left no .deb in ${cacheDir}`);
  return path.join(cacheDir, fetched);
}

const XZ_MAGIC = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);

/**
 * The uncompressed kernel from a bzImage whose payload is xz (Debian 12: CONFIG_KERNEL_XZ), the way the kernel's
 * scripts/extract-vmlinux does it: find the compressed stream's magic and decompress from there.
 */
export async function extractVmlinux(vmlinuz: string, out: string, signal?: AbortSignal): Promise<boolean> {
  const image = readFileSync(vmlinuz);
  let at = image.indexOf(XZ_MAGIC);
  while (at >= 0) {
    try {
      const r = await execa('xz', ['-dc', '--single-stream'], {
        timeout: 5 * 60_000,
        input: image.subarray(at),
        encoding: 'buffer',
        cancelSignal: signal,
        maxBuffer: 512 * 1024 * 1024,
      });
      const elf = Buffer.from(r.stdout);
      if (elf.readUInt32BE(0) === 0x7f454c46) {
        writeFileSync(out, elf);
        return true;
      }
    } catch {
      // not a real stream at this offset: look further
    }
    at = image.indexOf(XZ_MAGIC, at + 1);
  }
  return false;
}

function hashOf(...parts: (string | Uint8Array)[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex').slice(0, 16);
}

interface KernelDir {
  version: string;
  kernel: string;
  kernelFormat: VmImage['kernelFormat'];
  /** Module files in load order (dependencies first). */
  modules: string[];
}

/**
 * The kernel to boot and the modules the guest loads, from the Debian package (cached per package in
 * `cacheDir/kernel-<package>`): the uncompressed vmlinux when the kernel can boot through PVH, and the
 * dependency closure of GUEST_MODULES (the package ships no modules.dep: depmod builds it).
 */
async function prepareKernel(
  deb: string,
  cacheDir: string,
  signal: AbortSignal | undefined,
  log: (l: string) => void,
): Promise<KernelDir> {
  const dir = path.join(cacheDir, `kernel-${path.basename(deb, '.deb')}`);
  const manifest = path.join(dir, 'kernel.json');
  if (existsSync(manifest)) return JSON.parse(readFileSync(manifest, 'utf8')) as KernelDir;
  log(`unpacking ${path.basename(deb)}`);
  const work = mkdtempSync(path.join(cacheDir, 'build-'));
  try {
    const root = path.join(work, 'root');
    await run('dpkg-deb', ['-x', deb, root], { signal });
    const version = readdirSync(path.join(root, 'lib/modules'))[0];
    if (!version) throw new E2eError('E_E2E_KERNEL', `${path.basename(deb)} has no lib/modules`);
    const vmlinuz = path.join(root, 'boot', `vmlinuz-${version}`);
    const config = readFileSync(path.join(root, 'boot', `config-${version}`), 'utf8');
    const staged = path.join(work, 'kernel');
    mkdirSync(path.join(staged, 'modules'), { recursive: true });
    // QEMU boots an ELF vmlinux through its PVH entry note (CONFIG_PVH); otherwise it boots the bzImage.
    let kernelFormat: VmImage['kernelFormat'] = 'bzImage';
    let kernelName = 'vmlinuz';
    if (
      /^CONFIG_PVH=y$/m.test(config) &&
      (await extractVmlinux(vmlinuz, path.join(staged, 'vmlinux'), signal))
    ) {
      kernelFormat = 'vmlinux';
      kernelName = 'vmlinux';
    } else {
      copyFileSync(vmlinuz, path.join(staged, 'vmlinuz'));
    }
    await run(which('depmod')!, ['-b', root, version], { signal });
    const order: string[] = [];
    for (const m of GUEST_MODULES) {
      const r = await run(which('modprobe')!, ['-d', root, '-S', version, '--show-depends', m], { signal });
      for (const line of String(r.stdout).split('\n')) {
        const file = /^insmod (\S+)/.exec(line)?.[1];
        if (file && !order.includes(file)) order.push(file);
      }
    }
    const modules: string[] = [];
    for (const [i, file] of order.entries()) {
      const name = `${String(i).padStart(2, '0')}-${path.basename(file).replace(/\.xz$/, '')}`;
      if (file.endsWith('.xz')) {
        const r = await execa('xz', ['-dc', file], { encoding: 'buffer', timeout: 60_000 });
        writeFileSync(path.join(staged, 'modules', name), r.stdout);
      } else {
        copyFileSync(file, path.join(staged, 'modules', name));
      }
      modules.push(name);
    }
    rmSync(dir, { recursive: true, force: true });
    renameSync(staged, dir);
    const result: KernelDir = {
      version,
      kernel: path.join(dir, kernelName),
      kernelFormat,
      modules: modules.map((m) => path.join(dir, 'modules', m)),
    };
    writeFileSync(manifest, JSON.stringify(result, null, 2));
    log(`kernel ${version}: ${kernelFormat}, ${modules.length} modules for ${GUEST_MODULES.join(', ')}`);
    return result;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Builds (or reuses from `cacheDir`) the kernel and the initramfs. `initScript` is the initramfs's /init
 * (busybox sh); the initramfs holds it, a static busybox and the modules.
 */
export async function buildVm(opts: {
  cacheDir?: string;
  initScript: string;
  signal?: AbortSignal;
  log?: (line: string) => void;
}): Promise<VmImage> {
  const cacheDir = opts.cacheDir ?? DEFAULT_CACHE_DIR;
  const log = opts.log ?? (() => {});
  mkdirSync(cacheDir, { recursive: true });
  const deb = await fetchKernelPackage(cacheDir, opts.signal);
  const kernel = await prepareKernel(deb, cacheDir, opts.signal, log);
  const busybox = which('busybox')!;
  const init = readFileSync(opts.initScript);
  const initrd = path.join(cacheDir, `initrd-${hashOf(kernel.version, init, readFileSync(busybox))}.gz`);
  if (!existsSync(initrd)) {
    const work = mkdtempSync(path.join(cacheDir, 'initrd-'));
    try {
      for (const d of ['bin', 'dev', 'proc', 'sys', 'host', 'modules'])
        mkdirSync(path.join(work, d), { recursive: true });
      copyFileSync(busybox, path.join(work, 'bin/busybox'));
      writeFileSync(path.join(work, 'init'), init, { mode: 0o755 });
      chmodSync(path.join(work, 'init'), 0o755);
      for (const m of kernel.modules) copyFileSync(m, path.join(work, 'modules', path.basename(m)));
      writeFileSync(
        path.join(work, 'modules.load'),
        `${kernel.modules.map((m) => `/modules/${path.basename(m)}`).join('\n')}\n`,
      );
      const list = await run('find', ['.', '-print0'], { cwd: work });
      const archive = await execa('cpio', ['--null', '-o', '-H', 'newc', '--owner', '0:0', '--quiet'], {
        timeout: 60_000,
        cwd: work,
        input: String(list.stdout),
        encoding: 'buffer',
        maxBuffer: 256 * 1024 * 1024,
      });
      writeFileSync(`${initrd}.tmp`, gzipSync(archive.stdout, { level: 1 }));
      renameSync(`${initrd}.tmp`, initrd);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }
  return {
    kernel: kernel.kernel,
    kernelFormat: kernel.kernelFormat,
    kernelPackage: path.basename(deb),
    initrd,
  };
}

export interface VmShare {
  tag: string;
  path: string;
  readonly: boolean;
}

export interface VmRun {
  /** The guest's serial console. */
  console: string;
  wallMs: number;
  /** QEMU's own exit code. */
  qemuExit: number | undefined;
  timedOut: boolean;
}

/**
 * Boots the image and waits for the guest to power off (or `timeoutMs`). `env` reaches the guest's /init as
 * environment variables through the kernel command line (values must not contain spaces).
 */
export async function runVm(opts: {
  image: VmImage;
  shares: VmShare[];
  env: Record<string, string>;
  timeoutMs: number;
  memoryMiB?: number;
  cpus?: number;
  signal?: AbortSignal;
  onConsole?: (chunk: string) => void;
}): Promise<VmRun> {
  for (const [k, v] of Object.entries(opts.env)) {
    if (/\s/.test(v) || !/^[A-Z][A-Z0-9_]*$/.test(k))
      throw new E2eError('E_E2E_ENV', `guest variable ${k}=${v}: no spaces, upper-case names`);
  }
  const append = [
    'console=ttyS0',
    'quiet',
    'panic=-1',
    'oops=panic',
    ...Object.entries(opts.env).map(([k, v]) => `${k}=${v}`),
  ].join(' ');
  const args = [
    '-accel',
    'tcg',
    '-cpu',
    // Without memory protection keys: V8 guards its JIT pages with PKU where the CPU has it, and under TCG that
    // made Node abort ("Check failed: it->second.Size() > offset") or segfault in about a third of the runs.
    'max,-pku',
    '-smp',
    String(opts.cpus ?? 2),
    '-m',
    String(opts.memoryMiB ?? 1536),
    '-nodefaults',
    '-display',
    'none',
    '-serial',
    'stdio',
    '-no-reboot',
    '-kernel',
    opts.image.kernel,
    '-initrd',
    opts.image.initrd,
    '-append',
    append,
  ];
  for (const s of opts.shares) {
    args.push(
      '-virtfs',
      `local,path=${s.path},mount_tag=${s.tag},security_model=none,multidevs=remap${s.readonly ? ',readonly=on' : ''}`,
    );
  }
  const started = performance.now();
  let consoleText = '';
  const proc = execa('qemu-system-x86_64', args, {
    cancelSignal: opts.signal,
    timeout: opts.timeoutMs,
    stdin: 'ignore',
    reject: false,
    all: true,
    buffer: false,
  });
  proc.all?.setEncoding('utf8');
  proc.all?.on('data', (chunk: string) => {
    consoleText += chunk;
    opts.onConsole?.(chunk);
  });
  const r = await proc;
  return {
    console: consoleText,
    wallMs: performance.now() - started,
    qemuExit: r.exitCode,
    timedOut: r.timedOut === true,
  };
}

/**
 * Fills a Node compile cache (NODE_COMPILE_CACHE) by running `commands` on the host: under TCG, stripping the
 * types of and compiling the CLI's modules costs tens of seconds per `stm32-hil` start; the guest, which runs
 * the same files at the same paths with the same Node, starts from this cache instead.
 */
export async function warmCompileCache(
  dir: string,
  commands: string[][],
  signal?: AbortSignal,
): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const node = GUEST_NODE;
  for (const args of commands) {
    await execa(node, args, {
      timeout: 120_000,
      cwd: REPO_ROOT,
      env: { NODE_COMPILE_CACHE: dir },
      reject: false,
      cancelSignal: signal,
      stdin: 'ignore',
    });
  }
}
