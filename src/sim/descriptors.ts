import type { BootloaderInfo } from '../parts/catalogue.ts';

/**
 * USB descriptors of an ST ROM bootloader in DFU mode, built from the part catalogue's `bootloader` entry.
 * Layouts: USB 2.0 section 9.6 (device, configuration, interface, string descriptors) and USB DFU 1.1
 * section 4.2 (run-time/DFU-mode interface and functional descriptor). Values the catalogue does not hold
 * follow ST's USB device library, from which the ROM's DFU stack descends (ST UM1734 "STM32Cube USB device
 * library", DFU class): bcdUSB 0x0200, class/subclass/protocol 0 at device level, 64-byte EP0, one
 * configuration, bmAttributes 0xC0 (self-powered), bMaxPower 100 mA, LANGID 0x0409.
 */

export const DESC_DEVICE = 0x01;
export const DESC_CONFIGURATION = 0x02;
export const DESC_STRING = 0x03;
export const DESC_INTERFACE = 0x04;
/** USB 2.0 section 9.6.2: a full-speed-only device answers GET_DESCRIPTOR(DEVICE_QUALIFIER) with a request error. */
export const DESC_DEVICE_QUALIFIER = 0x06;
export const DESC_OTHER_SPEED_CONFIGURATION = 0x07;
/** USB DFU 1.1 section 4.1.3: DFU functional descriptor type. */
export const DESC_DFU_FUNCTIONAL = 0x21;

/** USB DFU 1.1 section 4.2.1: application-specific class 0xFE, subclass 1 (DFU), protocol 2 (DFU mode). */
export const DFU_INTERFACE_CLASS = 0xfe;
export const DFU_INTERFACE_SUBCLASS = 0x01;
export const DFU_INTERFACE_PROTOCOL_DFU_MODE = 0x02;
/** ST AN3156 section 3: DfuSe reports DFU version 1.1a. */
export const DFUSE_BCD_VERSION = 0x011a;

export const STRING_MANUFACTURER = 1;
export const STRING_PRODUCT = 2;
export const STRING_SERIAL = 3;
/** iInterface of alternate setting n is string FIRST_INTERFACE_STRING + n. */
export const FIRST_INTERFACE_STRING = 4;
export const LANGID_EN_US = 0x0409;

export const CONFIGURATION_VALUE = 1;
const CONFIG_ATTRIBUTES = 0xc0;
const MAX_POWER_2MA = 50;
const EP0_SIZE = 64;
const BCD_USB = 0x0200;

export interface DeviceModel {
  info: BootloaderInfo;
  device: Uint8Array;
  configuration: Uint8Array;
  functional: Uint8Array;
  /** Index -> string; index 0 is the LANGID table and is served by `stringDescriptor`. */
  strings: ReadonlyMap<number, string>;
  /** bmAttributes of the configuration (bit 6: self-powered) for GET_STATUS(device). */
  configAttributes: number;
}

function le16(n: number): [number, number] {
  return [n & 0xff, (n >> 8) & 0xff];
}

export function buildDeviceModel(info: BootloaderInfo): DeviceModel {
  const device = Uint8Array.of(
    18,
    DESC_DEVICE,
    ...le16(BCD_USB),
    0x00,
    0x00,
    0x00,
    EP0_SIZE,
    ...le16(info.vid),
    ...le16(info.pid),
    ...le16(info.bcdDevice),
    STRING_MANUFACTURER,
    STRING_PRODUCT,
    STRING_SERIAL,
    1,
  );
  // USB DFU 1.1 table 4.2: bLength 9, type 0x21, bmAttributes, wDetachTimeOut, wTransferSize, bcdDFUVersion.
  const functional = Uint8Array.of(
    9,
    DESC_DFU_FUNCTIONAL,
    info.attributes,
    ...le16(info.detachTimeoutMs),
    ...le16(info.transferSize),
    ...le16(DFUSE_BCD_VERSION),
  );
  const interfaces: number[] = [];
  for (const alt of info.alternates) {
    interfaces.push(
      9,
      DESC_INTERFACE,
      0,
      alt.alt,
      0,
      DFU_INTERFACE_CLASS,
      DFU_INTERFACE_SUBCLASS,
      DFU_INTERFACE_PROTOCOL_DFU_MODE,
      FIRST_INTERFACE_STRING + alt.alt,
    );
  }
  // ST's stack places the functional descriptor after the last alternate setting (dfu-util finds it there).
  const total = 9 + interfaces.length + functional.length;
  const configuration = Uint8Array.of(
    9,
    DESC_CONFIGURATION,
    ...le16(total),
    1,
    CONFIGURATION_VALUE,
    0,
    CONFIG_ATTRIBUTES,
    MAX_POWER_2MA,
    ...interfaces,
    ...functional,
  );
  const strings = new Map<number, string>([
    [STRING_MANUFACTURER, info.manufacturer],
    [STRING_PRODUCT, info.product],
    [STRING_SERIAL, info.serial],
  ]);
  for (const alt of info.alternates) strings.set(FIRST_INTERFACE_STRING + alt.alt, alt.name);
  return { info, device, configuration, functional, strings, configAttributes: CONFIG_ATTRIBUTES };
}

/** USB 2.0 section 9.6.7: string descriptor 0 lists LANGIDs; others are UTF-16LE. Undefined if there is none. */
export function stringDescriptor(model: DeviceModel, index: number): Uint8Array | undefined {
  if (index === 0) return Uint8Array.of(4, DESC_STRING, ...le16(LANGID_EN_US));
  const text = model.strings.get(index);
  if (text === undefined) return undefined;
  const body = Buffer.from(text, 'utf16le');
  const out = new Uint8Array(2 + body.length);
  out[0] = out.length;
  out[1] = DESC_STRING;
  out.set(body, 2);
  return out;
}
