import { type ErrorKind, HilError } from '../errors.ts';

/**
 * Errors of the serial and relay layer. A relay or port that misbehaves is never a failed chip test: ports that
 * are missing, unreadable or busy are `infra`; a relay board that does not answer, answers garbage or does not
 * switch is `device` (the relay board is the device at fault).
 */
export type SerialErrorCode =
  | 'E_SERIAL_NOT_FOUND'
  | 'E_SERIAL_PERMISSION'
  | 'E_SERIAL_BUSY'
  | 'E_SERIAL_GONE'
  | 'E_SERIAL_IO'
  | 'E_SERIAL_LIST';

export type RelayErrorCode =
  | 'E_RELAY_NO_ANSWER'
  | 'E_RELAY_GARBAGE'
  | 'E_RELAY_STATE_MISMATCH'
  | 'E_RELAY_NO_READBACK'
  | 'E_RELAY_CONFIG'
  | 'E_RELAY_VIRTUAL';

export class SerialError extends HilError {
  constructor(
    code: SerialErrorCode,
    message: string,
    opts: { details?: Record<string, unknown>; hint?: string; cause?: unknown; kind?: ErrorKind } = {},
  ) {
    super(code, message, {
      kind: opts.kind ?? 'infra',
      details: opts.details ?? {},
      ...(opts.hint ? { hint: opts.hint } : {}),
      ...(opts.cause === undefined ? {} : { cause: opts.cause }),
    });
  }
}

export class RelayError extends HilError {
  constructor(
    code: RelayErrorCode,
    message: string,
    opts: { details?: Record<string, unknown>; hint?: string; cause?: unknown; kind?: ErrorKind } = {},
  ) {
    super(code, message, {
      kind: opts.kind ?? 'device',
      details: opts.details ?? {},
      ...(opts.hint ? { hint: opts.hint } : {}),
      ...(opts.cause === undefined ? {} : { cause: opts.cause }),
    });
  }
}

/** `A0 01 01 A2` */
export function hexBytes(data: Uint8Array): string {
  return Array.from(data, (b) => b.toString(16).toUpperCase().padStart(2, '0')).join(' ');
}
