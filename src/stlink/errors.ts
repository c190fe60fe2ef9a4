import { type ErrorKind, HilError } from '../errors.ts';

/**
 * Stable codes of the ST-LINK / STM32_Programmer_CLI layer. The parser tags each `Error:` line of the tool's
 * output with one of these; the adapter raises the first one that matters as a StlinkError.
 */
export const STLINK_ERROR_KINDS = {
  /** The CLI could not be found anywhere we looked. */
  E_STLINK_CLI_NOT_FOUND: 'tool',
  /** The CLI exists but cannot be executed (no x bit, a directory, wrong format). */
  E_STLINK_CLI_NOT_EXECUTABLE: 'tool',
  /** The CLI ran past its deadline and was killed. */
  E_STLINK_CLI_DEADLINE: 'tool',
  /** The CLI was killed by a signal nobody in the harness sent. */
  E_STLINK_CLI_KILLED: 'tool',
  /** The CLI exited non-zero without saying why. */
  E_STLINK_CLI_FAILED: 'tool',
  /** The CLI's output is not what STM32_Programmer_CLI prints (garbage, a wrong binary, a missing success line). */
  E_STLINK_OUTPUT_UNRECOGNISED: 'tool',
  /** The CLI said the command line was wrong. */
  E_STLINK_USAGE: 'tool',
  /** No ST-LINK probe is connected to this host. */
  E_STLINK_NO_PROBE: 'device',
  /** Probes are connected, but none with the configured serial. */
  E_STLINK_PROBE_NOT_FOUND: 'device',
  /** USB communication with the probe failed (DEV_USB_COMM_ERR, libusb errors). */
  E_STLINK_USB_COMM: 'device',
  /** The probe reported an error of its own (DEV_CONNECT_ERR, DEV_TARGET_CMD_ERR, ...). */
  E_STLINK_PROBE_ERROR: 'device',
  /** The probe answers but sees no STM32 on SWD (unpowered board, wiring, SWD pins reused, RDP 2). */
  E_STLINK_NO_TARGET: 'device',
  /** The probe reached a core but could not identify the device (DevID 0x000, core ID unreadable). */
  E_STLINK_UNKNOWN_DEVICE: 'device',
  /** Read-out protection blocks the operation. */
  E_STLINK_RDP_ACTIVE: 'device',
  /** Reading memory failed. */
  E_STLINK_READ_FAILED: 'device',
  /** Programming failed (a sector or segment number when the tool gives one). */
  E_STLINK_DOWNLOAD_FAILED: 'device',
  /** An erase failed. */
  E_STLINK_ERASE_FAILED: 'device',
  /** The tool refused an address that is not flash ("Not flash Memory : No erase done"). */
  E_STLINK_NOT_FLASH: 'input',
  /** Verify found a byte that differs (address, expected, actual). */
  E_STLINK_DATA_MISMATCH: 'check',
  /** Verify failed (the summary line; the mismatch line carries the address). */
  E_STLINK_VERIFY_FAILED: 'check',
  /** Option byte programming or read-back failed. */
  E_STLINK_OPTION_BYTES: 'device',
  /** The tool could not open or parse the file it was given. */
  E_STLINK_FILE: 'input',
  /** A mass erase was requested without an explicit permission object. */
  E_STLINK_MASS_ERASE_NOT_PERMITTED: 'usage',
  /** An `Error:` line no other code describes. */
  E_STLINK_ERROR: 'tool',
} as const satisfies Record<string, ErrorKind>;

export type StlinkErrorCode = keyof typeof STLINK_ERROR_KINDS;

export class StlinkError extends HilError {
  declare readonly code: StlinkErrorCode;
  constructor(
    code: StlinkErrorCode,
    message: string,
    options: { details?: Record<string, unknown>; hint?: string; cause?: unknown } = {},
  ) {
    super(code, message, { kind: STLINK_ERROR_KINDS[code], ...options });
  }
}
