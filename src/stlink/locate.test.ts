import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { StlinkError } from './errors.ts';
import { defaultInstallPatterns, locateProgrammerCli, virtualProgrammerCliPath } from './locate.ts';

function tree() {
  const root = mkdtempSync(path.join(tmpdir(), 'locate-'));
  const put = (rel: string, mode = 0o755) => {
    const file = path.join(root, rel);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, '#!/bin/sh\n');
    chmodSync(file, mode);
    return file;
  };
  return { root, put };
}

function thrown(fn: () => unknown): StlinkError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(StlinkError);
    return e as StlinkError;
  }
  throw new Error('expected an error');
}

describe('locateProgrammerCli', () => {
  it('takes boards.yaml first, then $STM32_PROGRAMMER_CLI, then PATH, then the default install folder', () => {
    const t = tree();
    const configured = t.put('cfg/STM32_Programmer_CLI');
    const fromEnv = t.put('env/STM32_Programmer_CLI');
    const onPath = t.put('path/STM32_Programmer_CLI');
    const home = path.join(t.root, 'home');
    const installed = t.put('home/STMicroelectronics/STM32Cube/STM32CubeProgrammer/bin/STM32_Programmer_CLI');
    const base = { platform: 'linux' as const, home };
    const env = {
      STM32_PROGRAMMER_CLI: fromEnv,
      PATH: `${path.join(t.root, 'empty')}:${path.dirname(onPath)}`,
    };
    expect(locateProgrammerCli({ ...base, configured, env })).toMatchObject({
      path: configured,
      source: 'config',
      viaNode: false,
    });
    expect(locateProgrammerCli({ ...base, env })).toMatchObject({ path: fromEnv, source: 'env' });
    expect(locateProgrammerCli({ ...base, env: { PATH: env.PATH } })).toMatchObject({
      path: onPath,
      source: 'path',
    });
    expect(locateProgrammerCli({ ...base, env: { PATH: '/nonexistent' } })).toMatchObject({
      path: installed,
      source: 'default',
    });
  });

  it('finds the newest STM32CubeIDE-bundled copy through the wildcard folders', () => {
    const t = tree();
    const home = path.join(t.root, 'home');
    t.put('home/.local/share/stm32cube/bundles/programmer/2.9.0/bin/STM32_Programmer_CLI');
    const newest = t.put('home/.local/share/stm32cube/bundles/programmer/2.20.0/bin/STM32_Programmer_CLI');
    expect(locateProgrammerCli({ platform: 'linux', home, env: { PATH: '' } }).path).toBe(newest);
  });

  it('a missing CLI says every place it looked', () => {
    const t = tree();
    const e = thrown(() =>
      locateProgrammerCli({ platform: 'linux', home: path.join(t.root, 'h'), env: { PATH: '/a:/b' } }),
    );
    expect(e.code).toBe('E_STLINK_CLI_NOT_FOUND');
    expect(e.kind).toBe('tool');
    expect(e.message).toContain('PATH: STM32_Programmer_CLI in 2 folders');
    expect(e.message).toContain(
      path.join(t.root, 'h', 'STMicroelectronics/STM32Cube/STM32CubeProgrammer/bin/STM32_Programmer_CLI'),
    );
    expect(e.message).toContain('/opt/st/stm32cubeide_*/plugins/');
    expect(e.hint).toMatch(/tools\.programmerCli/);
  });

  it('an explicit path that is wrong is not silently replaced by another copy', () => {
    const t = tree();
    const onPath = t.put('path/STM32_Programmer_CLI');
    const e = thrown(() =>
      locateProgrammerCli({
        configured: path.join(t.root, 'missing'),
        env: { PATH: path.dirname(onPath) },
        platform: 'linux',
      }),
    );
    expect(e.code).toBe('E_STLINK_CLI_NOT_FOUND');
    expect(e.details.searched).toEqual([
      { where: 'boards.yaml tools.programmerCli', path: path.join(t.root, 'missing'), found: 'missing' },
    ]);
  });

  it('a CLI without the execute bit is its own error; PATH keeps looking past it', () => {
    const t = tree();
    const noexec = t.put('a/STM32_Programmer_CLI', 0o644);
    expect(
      thrown(() => locateProgrammerCli({ env: { STM32_PROGRAMMER_CLI: noexec }, platform: 'linux' })).code,
    ).toBe('E_STLINK_CLI_NOT_EXECUTABLE');
    const good = t.put('b/STM32_Programmer_CLI');
    const env = { PATH: `${path.dirname(noexec)}:${path.dirname(good)}` };
    expect(locateProgrammerCli({ env, platform: 'linux', home: t.root }).path).toBe(good);
    const onlyBad = thrown(() =>
      locateProgrammerCli({ env: { PATH: path.dirname(noexec) }, platform: 'linux', home: t.root }),
    );
    expect(onlyBad.code).toBe('E_STLINK_CLI_NOT_EXECUTABLE');
    expect(onlyBad.details.path).toBe(noexec);
  });

  it('knows the vendor folders on Windows and macOS', () => {
    const win = defaultInstallPatterns(
      'win32',
      { ProgramFiles: 'C:\\Program Files', LOCALAPPDATA: 'C:\\Users\\u\\AppData\\Local' },
      'C:\\Users\\u',
    );
    expect(win).toContain(
      'C:\\Program Files\\STMicroelectronics\\STM32Cube\\STM32CubeProgrammer\\bin\\STM32_Programmer_CLI.exe',
    );
    expect(win).toContain(
      'C:\\Users\\u\\AppData\\Local\\stm32cube\\bundles\\programmer\\*\\bin\\STM32_Programmer_CLI.exe',
    );
    expect(win.some((p) => p.startsWith('C:\\ST\\STM32CubeIDE_*'))).toBe(true);
    const mac = defaultInstallPatterns('darwin', {}, '/Users/u');
    expect(mac[0]).toBe(
      '/Applications/STMicroelectronics/STM32Cube/STM32CubeProgrammer/STM32CubeProgrammer.app/Contents/MacOs/bin/STM32_Programmer_CLI',
    );
  });

  it('points at the stand-in launcher for virtual boards', () => {
    expect(virtualProgrammerCliPath()).toMatch(/bin[/\\]virtual-stm32-programmer-cli\.js$/);
  });
});
