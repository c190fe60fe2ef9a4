/**
 * USB DFU 1.1 (USB Device Firmware Upgrade Specification, Revision 1.1, 2004) and ST's DfuSe extension
 * (ST AN3156 "USB DFU protocol used in the STM32 bootloader"): requests, states, status codes, descriptors.
 */

/** DFU class requests (DFU 1.1 section 3, table 3.2). */
export const DFU_REQUEST = {
  DETACH: 0x00,
  DNLOAD: 0x01,
  UPLOAD: 0x02,
  GETSTATUS: 0x03,
  CLRSTATUS: 0x04,
  GETSTATE: 0x05,
  ABORT: 0x06,
} as const;

export const DFU_REQUEST_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(DFU_REQUEST).map(([k, v]) => [v, `DFU_${k}`]),
);

/** Device states (DFU 1.1 section 6.1.2, table "bState"). */
export const DFU_STATE = {
  appIDLE: 0,
  appDETACH: 1,
  dfuIDLE: 2,
  dfuDNLOAD_SYNC: 3,
  dfuDNBUSY: 4,
  dfuDNLOAD_IDLE: 5,
  dfuMANIFEST_SYNC: 6,
  dfuMANIFEST: 7,
  dfuMANIFEST_WAIT_RESET: 8,
  dfuUPLOAD_IDLE: 9,
  dfuERROR: 10,
} as const;

export const DFU_STATE_NAMES = [
  'appIDLE',
  'appDETACH',
  'dfuIDLE',
  'dfuDNLOAD-SYNC',
  'dfuDNBUSY',
  'dfuDNLOAD-IDLE',
  'dfuMANIFEST-SYNC',
  'dfuMANIFEST',
  'dfuMANIFEST-WAIT-RESET',
  'dfuUPLOAD-IDLE',
  'dfuERROR',
] as const;

/** Status codes (DFU 1.1 section 6.1.2, table "bStatus"). */
export const DFU_STATUS = {
  OK: 0,
  errTARGET: 1,
  errFILE: 2,
  errWRITE: 3,
  errERASE: 4,
  errCHECK_ERASED: 5,
  errPROG: 6,
  errVERIFY: 7,
  errADDRESS: 8,
  errNOTDONE: 9,
  errFIRMWARE: 10,
  errVENDOR: 11,
  errUSBR: 12,
  errPOR: 13,
  errUNKNOWN: 14,
  errSTALLEDPKT: 15,
} as const;

export const DFU_STATUS_NAMES = [
  'OK',
  'errTARGET',
  'errFILE',
  'errWRITE',
  'errERASE',
  'errCHECK_ERASED',
  'errPROG',
  'errVERIFY',
  'errADDRESS',
  'errNOTDONE',
  'errFIRMWARE',
  'errVENDOR',
  'errUSBR',
  'errPOR',
  'errUNKNOWN',
  'errSTALLEDPKT',
] as const;

/** What each status means (DFU 1.1 section 6.1.2), for messages. */
export const DFU_STATUS_TEXT: Record<number, string> = {
  0: 'no error',
  1: 'file is not targeted for this device (for DfuSe: address not supported)',
  2: 'file fails a vendor-specific verification',
  3: 'device is unable to write memory',
  4: 'memory erase function failed',
  5: 'memory erase check failed',
  6: 'program memory function failed',
  7: 'programmed memory failed verification',
  8: 'address out of range',
  9: 'received DNLOAD with wLength = 0 but the device does not think it has all the data',
  10: 'device firmware is corrupt',
  11: 'vendor-specific error (for DfuSe: read protection active)',
  12: 'unexpected USB reset signalling',
  13: 'unexpected power-on reset',
  14: 'something went wrong, the device does not know what',
  15: 'device stalled an unexpected request',
};

export function stateName(state: number): string {
  return DFU_STATE_NAMES[state] ?? `state ${state}`;
}

export function statusName(status: number): string {
  return DFU_STATUS_NAMES[status] ?? `status ${status}`;
}

/** DfuSe command bytes sent with DNLOAD wValue 0 (ST AN3156 section 6: DFU_DNLOAD special commands). */
export const DFUSE_COMMAND = {
  GET_COMMANDS: 0x00,
  SET_ADDRESS_POINTER: 0x21,
  ERASE: 0x41,
  READ_UNPROTECT: 0x92,
} as const;

/** A GETSTATUS answer (DFU 1.1 section 6.1.2: bStatus, bwPollTimeout (3 bytes LE), bState, iString). */
export interface DfuStatusReport {
  status: number;
  pollTimeoutMs: number;
  state: number;
  iString: number;
}

export function parseStatus(data: Uint8Array): DfuStatusReport | undefined {
  if (data.length < 6) return undefined;
  return {
    status: data[0]!,
    pollTimeoutMs: data[1]! | (data[2]! << 8) | (data[3]! << 16),
    state: data[4]!,
    iString: data[5]!,
  };
}

export function describeStatus(s: Pick<DfuStatusReport, 'state' | 'status'>): string {
  return `${stateName(s.state)}/${statusName(s.status)}`;
}

/** DFU functional descriptor (DFU 1.1 section 4.1.3, table 4.2; type 0x21, 9 bytes). */
export interface DfuFunctionalDescriptor {
  /** bit 0 bitCanDnload, 1 bitCanUpload, 2 bitManifestationTolerant, 3 bitWillDetach. */
  attributes: number;
  canDownload: boolean;
  canUpload: boolean;
  manifestationTolerant: boolean;
  willDetach: boolean;
  detachTimeoutMs: number;
  transferSize: number;
  /** 0x0110 for DFU 1.1, 0x011A for ST's DfuSe (AN3156 section 3). */
  dfuVersion: number;
}

export const DFU_FUNCTIONAL_DESCRIPTOR_TYPE = 0x21;
/** Application-specific class 0xFE, subclass 0x01 = DFU (DFU 1.1 section 4.2.3). */
export const DFU_INTERFACE_CLASS = 0xfe;
export const DFU_INTERFACE_SUBCLASS = 0x01;
/** DfuSe's bcdDFUVersion (AN3156 section 3 and 4.1). */
export const DFUSE_VERSION = 0x011a;

export function parseFunctionalDescriptor(d: Uint8Array): DfuFunctionalDescriptor | undefined {
  if (d.length < 7 || d[1] !== DFU_FUNCTIONAL_DESCRIPTOR_TYPE) return undefined;
  const attributes = d[2]!;
  return {
    attributes,
    canDownload: (attributes & 1) !== 0,
    canUpload: (attributes & 2) !== 0,
    manifestationTolerant: (attributes & 4) !== 0,
    willDetach: (attributes & 8) !== 0,
    detachTimeoutMs: d[3]! | (d[4]! << 8),
    transferSize: d[5]! | (d[6]! << 8),
    // DFU 1.0 descriptors are 7 bytes long and have no version.
    dfuVersion: d.length >= 9 ? d[7]! | (d[8]! << 8) : 0x0100,
  };
}

export interface DfuInterfaceDescriptor {
  interfaceNumber: number;
  alternateSetting: number;
  interfaceClass: number;
  interfaceSubclass: number;
  interfaceProtocol: number;
  /** iInterface: string descriptor index of the alternate's name (the DfuSe layout string). */
  iInterface: number;
}

export interface ParsedConfiguration {
  configurationValue: number;
  /** DFU interfaces (class 0xFE subclass 0x01), every alternate setting. */
  dfuInterfaces: DfuInterfaceDescriptor[];
  functional: DfuFunctionalDescriptor | undefined;
}

/**
 * Walks a configuration descriptor (USB 2.0 section 9.6.3: configuration, then interface (type 4) descriptors
 * each followed by class descriptors) and returns the DFU interfaces and the functional descriptor.
 */
export function parseConfigurationDescriptor(d: Uint8Array): ParsedConfiguration | undefined {
  if (d.length < 9 || d[1] !== 0x02) return undefined;
  const total = Math.min(d.length, d[2]! | (d[3]! << 8));
  const out: ParsedConfiguration = { configurationValue: d[5]!, dfuInterfaces: [], functional: undefined };
  let inDfu = false;
  // Bounded by the descriptor length; a zero bLength would loop forever, so it ends the walk.
  for (let i = 0; i + 2 <= total; ) {
    const len = d[i]!;
    const type = d[i + 1]!;
    if (len < 2 || i + len > total) break;
    const desc = d.subarray(i, i + len);
    if (type === 0x04 && len >= 9) {
      inDfu = desc[5] === DFU_INTERFACE_CLASS && desc[6] === DFU_INTERFACE_SUBCLASS;
      if (inDfu) {
        out.dfuInterfaces.push({
          interfaceNumber: desc[2]!,
          alternateSetting: desc[3]!,
          interfaceClass: desc[5]!,
          interfaceSubclass: desc[6]!,
          interfaceProtocol: desc[7]!,
          iInterface: desc[8]!,
        });
      }
    } else if (type === DFU_FUNCTIONAL_DESCRIPTOR_TYPE && inDfu && !out.functional) {
      out.functional = parseFunctionalDescriptor(desc);
    }
    i += len;
  }
  return out;
}

/** Decodes a USB string descriptor (USB 2.0 section 9.6.7: UTF-16LE after a 2-byte header). */
export function parseStringDescriptor(d: Uint8Array): string | undefined {
  if (d.length < 2 || d[1] !== 0x03) return undefined;
  const len = Math.min(d.length, d[0]!);
  return Buffer.from(d.subarray(2, len - ((len - 2) % 2))).toString('utf16le');
}
