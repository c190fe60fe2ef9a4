import { accessSync, constants, globSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { StlinkError } from './errors.ts';

export type CliSource = 'config' | 'env' | 'path' | 'default' | 'virtual' | 'given';

/** How to start the programmer: the executable, and whether it is a script for this Node (the stand-in). */
export interface ProgrammerCli {
  path: string;
  source: CliSource;
  /** Run as `node <path>` with the harness's own Node 24 (the stand-in is a .js launcher). */
  viaNode: boolean;
}

export const CLI_NAME = 'STM32_Programmer_CLI';

/** The stand-in for virtual boards (src/sim/swd), started through its launcher. */
export function virtualProgrammerCliPath(): string {
  return fileURLToPath(new URL('../../bin/virtual-stm32-programmer-cli.js', import.meta.url));
}

export function cliFromPath(file: string, source: CliSource = 'given'): ProgrammerCli {
  return { path: file, source, viaNode: /\.(?:[cm]?js|ts)$/i.test(file) };
}

/**
 * Where ST installs the CLI by default (ST UM2237 "STM32CubeProgrammer software description", installation
 * chapter), plus the copies bundled with STM32CubeIDE and the STM32Cube bundle manager. Paths seen in real logs:
 * seed 004 (C:\ST\STM32CubeIDE_1.16.0\...\cubeprogrammer.win32_...\tools\bin), seed 003
 * (%LOCALAPPDATA%\stm32cube\bundles\programmer\2.20.0\bin). `*` matches one path component.
 */
export function defaultInstallPatterns(
  platform: NodeJS.Platform,
  env: NodeJS.ProcessEnv,
  home: string,
): string[] {
  if (platform === 'win32') {
    const w = path.win32;
    const out: string[] = [];
    for (const pf of [
      env.ProgramFiles ?? 'C:\\Program Files',
      env['ProgramFiles(x86)'] ?? 'C:\\Program Files (x86)',
      env.ProgramW6432,
    ]) {
      if (pf)
        out.push(
          w.join(pf, 'STMicroelectronics', 'STM32Cube', 'STM32CubeProgrammer', 'bin', `${CLI_NAME}.exe`),
        );
    }
    const local = env.LOCALAPPDATA ?? w.join(home, 'AppData', 'Local');
    out.push(w.join(local, 'stm32cube', 'bundles', 'programmer', '*', 'bin', `${CLI_NAME}.exe`));
    out.push(
      w.join(
        'C:\\ST',
        'STM32CubeIDE_*',
        'STM32CubeIDE',
        'plugins',
        'com.st.stm32cube.ide.mcu.externaltools.cubeprogrammer.win32_*',
        'tools',
        'bin',
        `${CLI_NAME}.exe`,
      ),
    );
    return [...new Set(out)];
  }
  const p = path.posix;
  if (platform === 'darwin') {
    return [
      '/Applications/STMicroelectronics/STM32Cube/STM32CubeProgrammer/STM32CubeProgrammer.app/Contents/MacOs/bin/STM32_Programmer_CLI',
      p.join(
        home,
        'Applications/STMicroelectronics/STM32Cube/STM32CubeProgrammer/STM32CubeProgrammer.app/Contents/MacOs/bin/STM32_Programmer_CLI',
      ),
      p.join(home, 'Library/STM32Cube/bundles/programmer/*/bin/STM32_Programmer_CLI'),
      '/Applications/STM32CubeIDE.app/Contents/Eclipse/plugins/com.st.stm32cube.ide.mcu.externaltools.cubeprogrammer.macos64_*/tools/bin/STM32_Programmer_CLI',
    ];
  }
  return [
    p.join(home, 'STMicroelectronics/STM32Cube/STM32CubeProgrammer/bin/STM32_Programmer_CLI'),
    '/usr/local/STMicroelectronics/STM32Cube/STM32CubeProgrammer/bin/STM32_Programmer_CLI',
    '/opt/st/STM32CubeProgrammer/bin/STM32_Programmer_CLI',
    p.join(home, '.local/share/stm32cube/bundles/programmer/*/bin/STM32_Programmer_CLI'),
    '/opt/st/stm32cubeide_*/plugins/com.st.stm32cube.ide.mcu.externaltools.cubeprogrammer.linux64_*/tools/bin/STM32_Programmer_CLI',
  ];
}

export interface LocateOptions {
  /** boards.yaml `tools.programmerCli`, already resolved against the file's folder. */
  configured?: string | undefined;
  env?: NodeJS.ProcessEnv;
  platform?: NodeJS.Platform;
  home?: string;
}

type Probe = 'ok' | 'missing' | 'not-executable';

function probeFile(file: string, platform: NodeJS.Platform): Probe {
  try {
    if (!statSync(file).isFile()) return 'not-executable';
  } catch {
    return 'missing';
  }
  if (platform === 'win32') return 'ok';
  try {
    accessSync(file, constants.X_OK);
    return 'ok';
  } catch {
    return 'not-executable';
  }
}

/** Expands one-component `*` wildcards; the newest-looking match first (bundle versions sort last-is-newest). */
function expand(pattern: string, platform: NodeJS.Platform): string[] {
  if (!pattern.includes('*')) return [pattern];
  if (platform === 'win32' && process.platform !== 'win32') return [];
  try {
    // Glob patterns use "/" on every platform; on Windows "\\" would be read as an escape.
    return globSync(platform === 'win32' ? pattern.replaceAll('\\', '/') : pattern).sort((a, b) =>
      b.localeCompare(a, undefined, { numeric: true }),
    );
  } catch {
    return [];
  }
}

/**
 * Finds STM32_Programmer_CLI: boards.yaml `tools.programmerCli`, then $STM32_PROGRAMMER_CLI (either one, when set,
 * is the only place looked at: a wrong explicit path must not silently run another copy), then PATH, then the
 * vendor's default install folders. Missing: E_STLINK_CLI_NOT_FOUND listing every place looked at; found but not
 * runnable: E_STLINK_CLI_NOT_EXECUTABLE.
 */
export function locateProgrammerCli(opts: LocateOptions = {}): ProgrammerCli {
  const env = opts.env ?? process.env;
  const platform = opts.platform ?? process.platform;
  const home = opts.home ?? homedir();
  const searched: Array<{ where: string; path: string; found: Probe }> = [];

  const explicit = (file: string, source: CliSource, where: string): ProgrammerCli => {
    const found = probeFile(file, platform);
    searched.push({ where, path: file, found });
    if (found === 'ok') return cliFromPath(file, source);
    throw notUsable(found, file, searched);
  };
  if (opts.configured) return explicit(opts.configured, 'config', 'boards.yaml tools.programmerCli');
  if (env.STM32_PROGRAMMER_CLI) return explicit(env.STM32_PROGRAMMER_CLI, 'env', 'STM32_PROGRAMMER_CLI');

  const names = platform === 'win32' ? [`${CLI_NAME}.exe`, `${CLI_NAME}.bat`] : [CLI_NAME];
  const pathVar = env.PATH ?? env.Path ?? '';
  const delimiter = platform === 'win32' ? ';' : ':';
  const join = platform === 'win32' ? path.win32.join : path.posix.join;
  let notExecutable: string | undefined;
  for (const dir of pathVar.split(delimiter).filter(Boolean)) {
    for (const name of names) {
      const file = join(dir, name);
      const found = probeFile(file, platform);
      if (found === 'missing') continue;
      searched.push({ where: 'PATH', path: file, found });
      if (found === 'ok') return cliFromPath(file, 'path');
      notExecutable ??= file;
    }
  }
  if (!searched.some((s) => s.where === 'PATH'))
    searched.push({
      where: 'PATH',
      path: `${names.join(' or ')} in ${pathVar.split(delimiter).filter(Boolean).length} folders`,
      found: 'missing',
    });
  for (const pattern of defaultInstallPatterns(platform, env, home)) {
    const matches = expand(pattern, platform);
    if (matches.length === 0)
      searched.push({ where: 'default install folder', path: pattern, found: 'missing' });
    for (const file of matches) {
      const found = probeFile(file, platform);
      searched.push({ where: 'default install folder', path: file, found });
      if (found === 'ok') return cliFromPath(file, 'default');
      if (found === 'not-executable') notExecutable ??= file;
    }
  }
  if (notExecutable) throw notUsable('not-executable', notExecutable, searched);
  throw notUsable('missing', CLI_NAME, searched);
}

function notUsable(
  found: Probe,
  file: string,
  searched: Array<{ where: string; path: string; found: Probe }>,
): StlinkError {
  const list = searched
    .map((s) => `${s.where}: ${s.path}${s.found === 'not-executable' ? ' (not executable)' : ''}`)
    .join('; ');
  if (found === 'not-executable') {
    return new StlinkError('E_STLINK_CLI_NOT_EXECUTABLE', `${file} exists but cannot be executed`, {
      details: { path: file, searched },
      hint: 'check its permissions (chmod +x) and that it is the STM32_Programmer_CLI binary for this OS',
    });
  }
  return new StlinkError('E_STLINK_CLI_NOT_FOUND', `STM32_Programmer_CLI not found; looked in ${list}`, {
    details: { searched },
    hint: 'install STM32CubeProgrammer, or set tools.programmerCli in boards.yaml or STM32_PROGRAMMER_CLI',
  });
}
