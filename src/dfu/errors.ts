import { type ErrorKind, HilError } from '../errors.ts';
import { hex32 } from '../util/hex.ts';
import { stateName, statusName } from './protocol.ts';

/**
 * Errors of the DfuSe host. Codes are stable:
 * - E_DFU_<STATUS> (E_DFU_TARGET, E_DFU_WRITE, E_DFU_ERASE, E_DFU_PROG, E_DFU_VENDOR, E_DFU_UNKNOWN, ...):
 *   the device reported that DFU status (DFU 1.1 section 6.1.2) for a request;
 * - E_DFU_READ_PROTECTED: an UPLOAD or erase refused with errVENDOR (RDP active, ST AN3156 section 6);
 * - E_DFU_BUSY_TIMEOUT: the device stayed busy past the worst case for the operation;
 * - E_DFU_STATE: the device is in a state the protocol does not allow here;
 * - E_DFU_STALL: a request stalled and the device reports no error state to explain it;
 * - E_DFU_DESCRIPTOR / E_DFU_NOT_DFUSE: the device is not a usable DfuSe device;
 * - E_DFU_UNSUPPORTED: a DfuSe command the device does not list;
 * - E_DFU_PLAN_OUTSIDE / E_DFU_PLAN_EMPTY (input): the image cannot be flashed as it is;
 * - E_DFU_PERMISSION (usage): mass erase or read unprotect without the explicit permission;
 * - E_DFU_VERIFY_MISMATCH (check): read-back differs from the image.
 * `details` carries `address`, `state`, `status` (names) where they apply.
 */
export class DfuError extends HilError {
  constructor(
    code: string,
    message: string,
    opts: { kind?: ErrorKind; details?: Record<string, unknown>; hint?: string; cause?: unknown } = {},
  ) {
    super(code, message, {
      kind: opts.kind ?? 'device',
      details: opts.details ?? {},
      ...(opts.hint ? { hint: opts.hint } : {}),
      ...(opts.cause === undefined ? {} : { cause: opts.cause }),
    });
  }

  get address(): number | undefined {
    return typeof this.details.address === 'number' ? this.details.address : undefined;
  }
}

/** E_DFU_TARGET from errTARGET, E_DFU_CHECK_ERASED from errCHECK_ERASED, ... */
export function codeForStatus(status: number): string {
  const name = statusName(status);
  return name.startsWith('err') ? `E_DFU_${name.slice(3).toUpperCase()}` : 'E_DFU_STATUS';
}

export function statusDetails(
  s: { state: number; status: number } | undefined,
  address?: number,
): Record<string, unknown> {
  return {
    ...(address === undefined ? {} : { address, addressHex: hex32(address) }),
    ...(s ? { state: stateName(s.state), status: statusName(s.status) } : {}),
  };
}
