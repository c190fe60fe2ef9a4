import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, configPath, loadConfig, parseConfig } from './config.ts';

const repoBoards = new URL('../../boards.yaml', import.meta.url).pathname;

function errorOf(text: string): ConfigError {
  try {
    parseConfig(text, '/farm/boards.yaml');
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

describe('boards.yaml', () => {
  it('loads the default virtual farm with the boards the nightly job needs', () => {
    const farm = loadConfig(repoBoards);
    const ids = farm.boards.map(
      (b) => `${b.part}:${b.virtual?.chipRevision}:${b.virtual?.bootloader.toString(16)}`,
    );
    expect(ids).toEqual(
      expect.arrayContaining([
        'stm32h743:Y:d2',
        'stm32h743:V:90',
        'stm32h743:V:92',
        'stm32h747:Y:d2',
        'stm32f407:Y:31',
      ]),
    );
    expect(farm.boards.some((b) => (b.virtual?.faults?.weakBits?.length ?? 0) > 0)).toBe(true);
    expect(farm.stateDir).toBe(path.join(path.dirname(repoBoards), '.stm32-hil'));
  });

  it('reports an unknown key with file, line and column of the key', () => {
    const e = errorOf(
      'boards:\n  - id: a\n    part: stm32h743\n    virtual: { chipRevision: Y, bootloader: 0xD2 }\n    powr: { protocol: lcus, channel: 1 }\n',
    );
    expect(e.code).toBe('E_CONFIG_SCHEMA');
    expect(e.message).toMatch(/^\/farm\/boards\.yaml:5:5: boards\[0\]\.powr: unknown key "powr"/);
  });

  it('reports a wrong enum value at the value', () => {
    const e = errorOf(
      'boards:\n  - id: a\n    part: stm32h743\n    usb: { path: "1-2" }\n    power: { port: /dev/ttyUSB0, protocol: lcsu, channel: 1 }\n',
    );
    expect(e.message).toMatch(/boards\.yaml:5:\d+: boards\[0\]\.power\.protocol: /);
    expect(e.details.issues).toHaveLength(1);
  });

  it('takes a known issue that names measurements, and names one that names neither tests nor measurements', () => {
    const board =
      'boards:\n  - id: a\n    part: stm32h743\n    virtual: { chipRevision: V, bootloader: 0x90 }\n';
    const timing =
      'knownIssues:\n  - id: slow\n    title: enumerates late\n    measurements: [enumeration_ms]\n    bootloaders: [0x90]\n    source: AN2606\n';
    expect(parseConfig(timing + board, '/farm/boards.yaml').knownIssues?.[0]?.measurements).toEqual([
      'enumeration_ms',
    ]);
    const e = errorOf('knownIssues:\n  - id: vague\n    title: something\n    source: a forum\n' + board);
    expect(e.code).toBe('E_CONFIG_SCHEMA');
    expect(e.message).toMatch(
      /^\/farm\/boards\.yaml:2:\d+: knownIssues\[0\]: a known issue names the tests it fails \(tests:\) or the measurements it slows/,
    );
  });

  it('reports YAML syntax errors with their position', () => {
    const e = errorOf('boards:\n  - id: a\n   part: x\n');
    expect(e.code).toBe('E_CONFIG_YAML');
    expect(e.message).toMatch(/boards\.yaml:\d+:\d+:/);
  });

  it('rejects an unknown part, duplicate ids and a real board without a USB identity', () => {
    expect(errorOf('boards:\n  - id: a\n    part: stm32h999\n    usb: { path: "1" }\n').code).toBe(
      'E_CONFIG_PART',
    );
    const dup =
      'boards:\n  - id: a\n    part: stm32h743\n    usb: { path: "1" }\n  - id: a\n    part: stm32h743\n    usb: { path: "2" }\n';
    expect(errorOf(dup).message).toMatch(/:5:\d+: boards\[1\]\.id: board "a" is defined twice/);
    expect(errorOf('boards:\n  - id: a\n    part: stm32h743\n').code).toBe('E_CONFIG_BOARD');
  });

  it('resolves --config, then STM32_HIL_CONFIG, then ./boards.yaml, and relative paths from the file', () => {
    expect(configPath('x.yaml', {})).toBe(path.resolve('x.yaml'));
    expect(configPath(undefined, { STM32_HIL_CONFIG: '/etc/farm.yaml' })).toBe('/etc/farm.yaml');
    expect(configPath(undefined, {})).toBe(path.resolve('boards.yaml'));
    const dir = mkdtempSync(path.join(tmpdir(), 'cfg-'));
    const file = path.join(dir, 'farm.yaml');
    writeFileSync(
      file,
      'farm: { stateDir: state }\nboards:\n  - id: a\n    part: stm32f407\n    virtual: { chipRevision: Y, bootloader: 0x31 }\n',
    );
    expect(loadConfig(file).stateDir).toBe(path.join(dir, 'state'));
  });

  it('says where to point it when the file is missing', () => {
    try {
      loadConfig('/nonexistent/boards.yaml');
      expect.unreachable();
    } catch (e) {
      expect((e as ConfigError).code).toBe('E_CONFIG_NOT_FOUND');
      expect((e as ConfigError).hint).toMatch(/--config/);
    }
  });
});
