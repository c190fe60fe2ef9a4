import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../farm/config.ts';

const FILE = '/farm/boards.yaml';

function board(power: string, extra = ''): string {
  return `boards:\n  - id: a\n    part: stm32h743\n    usb: { path: "1-4.2" }\n    power: ${power}\n${extra}`;
}

function errorOf(text: string): ConfigError {
  try {
    parseConfig(text, FILE);
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

describe('relays in boards.yaml', () => {
  it('accepts the documented example (power and BOOT0 on two channels of one LCUS board)', () => {
    const farm = parseConfig(
      board(
        '{ port: /dev/ttyUSB0, protocol: lcus, channel: 1 }',
        '    boot0: { port: /dev/ttyUSB0, protocol: lcus, channel: 2 }\n',
      ),
      FILE,
    );
    expect(farm.boards[0]!.boot0).toEqual({ port: '/dev/ttyUSB0', protocol: 'lcus', channel: 2 });
  });

  it('names an unknown protocol with file, line and column', () => {
    const e = errorOf(board('{ port: /dev/ttyUSB0, protocol: sainsmart, channel: 1 }'));
    expect(e.code).toBe('E_CONFIG_SCHEMA');
    expect(e.message).toMatch(
      /^\/farm\/boards\.yaml:5:44: boards\[0\]\.power\.protocol: Invalid option: expected one of "lcus"\|"numato"/,
    );
    expect(e.details).toMatchObject({ file: FILE });
  });

  it('names a channel out of range for the protocol at the channel', () => {
    const e = errorOf(board('{ port: /dev/ttyUSB0, protocol: lcus, channel: 9 }'));
    expect(e.code).toBe('E_CONFIG_RELAY');
    expect(e.message).toBe(
      '/farm/boards.yaml:5:59: boards[0].power.channel: channel 9 is out of range for lcus (1 to 8)',
    );
    expect(e.details).toEqual({ file: FILE, line: 5, col: 59 });
    expect(errorOf(board('{ port: /dev/ttyUSB0, protocol: kmtronic, channel: 0 }')).message).toMatch(
      /:5:63: boards\[0\]\.power\.channel: channel 0 is out of range for kmtronic \(1 to 8\)/,
    );
    // Numato relays 0-31 are all valid (the schema stops at 31).
    expect(
      parseConfig(board('{ port: /dev/ttyACM0, protocol: numato, channel: 31 }'), FILE).boards[0]!.power!
        .channel,
    ).toBe(31);
    expect(errorOf(board('{ port: /dev/ttyACM0, protocol: numato, channel: 32 }')).code).toBe(
      'E_CONFIG_SCHEMA',
    );
  });

  it('checks a channel against the relay count of the board', () => {
    const e = errorOf(
      board('\n      port: /dev/ttyUSB0\n      protocol: lcus\n      channels: 2\n      channel: 4\n'),
    );
    expect(e.message).toBe(
      '/farm/boards.yaml:9:16: boards[0].power.channel: channel 4 does not exist on a 2-relay lcus board (1 to 2)',
    );
    expect(
      errorOf(board('{ port: /dev/ttyACM0, protocol: numato, channels: 8, channel: 8 }')).message,
    ).toMatch(/\(0 to 7\)/);
  });

  it('wants a port for a serial relay, and a virtual board for a virtual relay', () => {
    expect(errorOf(board('{ protocol: lcus, channel: 1 }')).message).toMatch(
      /^\/farm\/boards\.yaml:5:12: boards\[0\]\.power: protocol lcus needs port:/,
    );
    expect(errorOf(board('{ protocol: virtual, channel: 1 }')).message).toMatch(
      /boards\[0\]\.power\.protocol: protocol virtual drives a simulated board/,
    );
  });

  it('refuses two lines on one relay channel, and one port spoken to in two protocols', () => {
    const twice = `${board('{ port: /dev/ttyUSB0, protocol: lcus, channel: 1 }')}  - id: b\n    part: stm32h743\n    usb: { path: "1-4.3" }\n    power: { port: /dev/ttyUSB0, protocol: lcus, channel: 1 }\n`;
    const e = errorOf(twice);
    expect(e.message).toBe(
      '/farm/boards.yaml:9:59: boards[1].power.channel: channel 1 of /dev/ttyUSB0 is also boards[0].power ("a"); one relay cannot switch two lines',
    );
    const mixed = errorOf(
      board(
        '{ port: /dev/ttyUSB0, protocol: lcus, channel: 1 }',
        '    boot0: { port: /dev/ttyUSB0, protocol: kmtronic, channel: 2 }\n',
      ),
    );
    expect(mixed.message).toMatch(
      /:6:44: boards\[0\]\.boot0\.protocol: \/dev\/ttyUSB0 is spoken to as lcus in boards\[0\]\.power/,
    );
  });

  it('checks generic commands: present, hex that parses, a status pattern that compiles', () => {
    expect(errorOf(board('{ port: /dev/ttyUSB0, protocol: generic, channel: 1 }')).message).toMatch(
      /protocol generic needs generic:/,
    );
    expect(
      errorOf(
        board(
          '{ port: /dev/ttyUSB0, protocol: generic, channel: 1, generic: { on: "A0 zz", off: "A0 00", encoding: hex } }',
        ),
      ).message,
    ).toMatch(/boards\[0\]\.power\.generic\.on: not hex bytes: "zz" is not a hex byte/);
    expect(
      errorOf(
        board(
          '{ port: /dev/ttyUSB0, protocol: generic, channel: 1, generic: { on: "1", off: "0", status: "?", statusPattern: "(on" } }',
        ),
      ).message,
    ).toMatch(/boards\[0\]\.power\.generic\.statusPattern: not a regular expression/);
    expect(
      errorOf(board('{ port: /dev/ttyUSB0, protocol: lcus, channel: 1, generic: { on: "1", off: "0" } }'))
        .message,
    ).toMatch(/boards\[0\]\.power\.generic: generic: only applies to protocol generic/);
  });
});
