import type { Part } from '../../parts/catalogue.ts';

/**
 * Text in the layout STM32_Programmer_CLI 2.x prints (see src/triage/fixtures/003_* and 004_*, real outputs of
 * CLI 2.20 and 2.17): fixed-width "Key  : value" blocks, a 50-cell progress bar, "HH:MM:SS.mmm" durations.
 */

export const STANDIN_CLI_VERSION = '2.20.0';

export function banner(version = STANDIN_CLI_VERSION): string[] {
  const rule = `      ${'-'.repeat(67)}`;
  return [rule, `                        STM32CubeProgrammer v${version}                  `, rule, ''];
}

export const BAR = `${'█'.repeat(50)} 100%`;

/** "Key" padded the way the tool pads its probe/target block ("ST-LINK SN  : ", "Connect mode: "). */
export function kv(key: string, value: string): string {
  return `${key.padEnd(12)}: ${value}`;
}

/** The indented facts inside an operation ("  Size          : 1024 Bytes"). */
export function field(key: string, value: string): string {
  return `  ${key.padEnd(14)}: ${value}`;
}

export function elapsed(ms: number): string {
  const t = Math.max(0, Math.round(ms));
  const h = Math.floor(t / 3_600_000);
  const m = Math.floor((t % 3_600_000) / 60_000);
  const s = Math.floor((t % 60_000) / 1000);
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${pad(h)}:${pad(m)}:${pad(s)}.${pad(t % 1000, 3)}`;
}

/** "65.18 KB" above 1 KiB, "1024 Bytes" below, as the download block prints sizes. */
export function fileSize(bytes: number): string {
  return bytes >= 1024 * 10 ? `${(bytes / 1024).toFixed(2)} KB` : `${bytes} Bytes`;
}

/** "2 MBytes", "256 KBytes", as the target block prints the flash size. */
export function flashSizeText(bytes: number): string {
  return bytes >= 1024 * 1024 && bytes % (1024 * 1024) === 0
    ? `${bytes / (1024 * 1024)} MBytes`
    : `${Math.round(bytes / 1024)} KBytes`;
}

// The "Device name" the tool prints for a DEV_ID (seen in real outputs: 0x450 in seed 004, 0x489 in seed 003,
// 0x413 in ST community logs of F407 boards).
const DEVICE_NAMES: Record<number, string> = {
  1104: 'STM32H7xx',
  1043: 'STM32F405xx/F407xx/F415xx/F417xx',
  1161: 'STM32U0xx',
};

export function deviceName(part: Part): string {
  return DEVICE_NAMES[part.deviceId] ?? `${part.family}xx`;
}

export function hexShort(n: number, digits = 1): string {
  return `0x${n.toString(16).toUpperCase().padStart(digits, '0')}`;
}

/** Connect parameters to the words the tool prints. */
export function connectModeText(mode: string | undefined): string {
  switch ((mode ?? 'normal').toUpperCase()) {
    case 'UR':
      return 'Under Reset';
    case 'HOTPLUG':
      return 'Hot Plug';
    case 'POWERDOWN':
      return 'Power Down';
    default:
      return 'Normal';
  }
}

export function resetModeText(reset: string | undefined): string {
  switch ((reset ?? 'SWrst').toLowerCase()) {
    case 'hwrst':
      return 'Hardware reset';
    case 'crst':
      return 'Core reset';
    default:
      return 'Software reset';
  }
}

/** SWD clocks an ST-LINK/V3 offers (kHz); the probe takes the highest one not above the request. */
const V3_SWD_KHZ = [24000, 8000, 3300, 1000, 200, 50, 5];

export function probeFrequency(requestKHz: number | undefined): number {
  const want = requestKHz ?? 8000;
  return V3_SWD_KHZ.find((f) => f <= want) ?? 5;
}
