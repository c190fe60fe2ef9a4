import { HilError } from '../errors.ts';

export type UsbErrorCode =
  /** The device vanished (unplugged, reset, left DFU mode, powered off). */
  | 'E_USB_DISCONNECTED'
  /** A transfer got no answer within its timeout. */
  | 'E_USB_TIMEOUT'
  /** Any other transfer failure (babble, protocol fault, bad state of the handle). */
  | 'E_USB_TRANSFER'
  /** The host has no USB subsystem node-usb can use (a container without /sys/bus/usb). */
  | 'E_USB_NO_SUBSYSTEM'
  /** The OS refused access to the device node. */
  | 'E_USB_PERMISSION'
  /** No attached device matches the selector. */
  | 'E_USB_NOT_FOUND'
  /** More than one attached device matches the selector. */
  | 'E_USB_AMBIGUOUS'
  /** Opening, claiming or configuring the device failed. */
  | 'E_USB_OPEN'
  /** A device did not appear or vanish within its deadline. */
  | 'E_USB_WAIT_TIMEOUT';

export class UsbError extends HilError {
  declare readonly code: UsbErrorCode;
  constructor(
    code: UsbErrorCode,
    message: string,
    details: Record<string, unknown> = {},
    hint?: string,
    cause?: unknown,
  ) {
    super(code, message, {
      kind: 'device',
      details,
      ...(hint ? { hint } : {}),
      ...(cause === undefined ? {} : { cause }),
    });
  }
}

export class UsbSelectorError extends HilError {
  constructor(text: string, reason: string) {
    super('E_USB_SELECTOR', `bad USB device selector "${text}": ${reason}`, {
      kind: 'usage',
      details: { selector: text },
      hint: 'use VID:PID, VID:PID:SERIAL or VID:PID@PORTPATH (hex IDs), e.g. 0483:df11@1-4.2',
    });
  }
}

/**
 * The udev rule that lets a non-root user open the ST ROM bootloader (0483:df11). The bootloader's
 * USB identity is from ST AN2606 ("USB DFU" device: VID 0x0483, PID 0xDF11).
 */
export const UDEV_RULE_FILE = '/etc/udev/rules.d/50-stm32-dfu.rules';
export const UDEV_RULE_LINE =
  'SUBSYSTEM=="usb", ATTRS{idVendor}=="0483", ATTRS{idProduct}=="df11", MODE="0664", GROUP="plugdev"';

export function permissionHint(vid = 0x0483, pid = 0xdf11): string {
  const line =
    vid === 0x0483 && pid === 0xdf11
      ? UDEV_RULE_LINE
      : `SUBSYSTEM=="usb", ATTRS{idVendor}=="${hex4(vid)}", ATTRS{idProduct}=="${hex4(pid)}", MODE="0664", GROUP="plugdev"`;
  return (
    `grant access with a udev rule: put the line\n    ${line}\n  in ${UDEV_RULE_FILE}, run ` +
    '`sudo udevadm control --reload-rules && sudo udevadm trigger`, add yourself to plugdev ' +
    '(`sudo usermod -aG plugdev $USER`, then log in again) and re-plug the board'
  );
}

export function noSubsystemError(cause: unknown): UsbError {
  return new UsbError(
    'E_USB_NO_SUBSYSTEM',
    'this host has no USB subsystem: /sys/bus/usb/devices/ is missing, so no USB device can be reached',
    {},
    'run on a host with USB (in a container, pass the bus through: --privileged -v /dev/bus/usb:/dev/bus/usb ' +
      '-v /sys/bus/usb:/sys/bus/usb), or use the virtual boards of boards.yaml (--board ID)',
    cause,
  );
}

export function hex4(n: number): string {
  return n.toString(16).padStart(4, '0');
}

/** Text of whatever a USB library threw. */
export function errorText(e: unknown): string {
  if (e instanceof Error) return `${e.name === 'Error' ? '' : `${e.name}: `}${e.message}`;
  return String(e);
}
