/**
 * The subset of the W3C WebUSB `USBDevice` that the DfuSe host uses. node-usb 3's WebUSB devices and the
 * virtual bootloader (src/sim) both provide it, so the host is written once for real and virtual boards.
 * Types come from @types/w3c-web-usb (a dependency of the `usb` package).
 */
export type UsbDeviceLike = Pick<
  USBDevice,
  | 'vendorId'
  | 'productId'
  | 'deviceVersionMajor'
  | 'deviceVersionMinor'
  | 'deviceVersionSubminor'
  | 'manufacturerName'
  | 'productName'
  | 'serialNumber'
  | 'configuration'
  | 'configurations'
  | 'opened'
  | 'open'
  | 'close'
  | 'selectConfiguration'
  | 'claimInterface'
  | 'releaseInterface'
  | 'selectAlternateInterface'
  | 'controlTransferIn'
  | 'controlTransferOut'
  | 'reset'
>;

/** A raw USB setup packet (USB 2.0 section 9.3), as USB/IP and the virtual device see it. */
export interface SetupPacket {
  bmRequestType: number;
  bRequest: number;
  wValue: number;
  wIndex: number;
  wLength: number;
}
