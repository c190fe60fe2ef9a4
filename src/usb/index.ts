// Public API of the USB layer: one adapter that normalises how USB libraries fail, device discovery over
// real (node-usb) and virtual backends, and the USB error types.
export {
  type ControlInResult,
  type ControlOutResult,
  type ControlSetup,
  classifyUsbFailure,
  rawSetup,
  type TransferOptions,
  type TransferOutcome,
  type TransferRecord,
  UsbAdapter,
  type UsbAdapterOptions,
  type UsbFailure,
} from './control.ts';
export {
  describeEntry,
  duplicateSerials,
  duplicateSerialWarning,
  findDevice,
  listDevices,
  matches,
  NodeUsbBackend,
  parseUsbSelector,
  portPathOf,
  ST_DFU_PID,
  ST_DFU_VID,
  selectorFor,
  type UsbBackend,
  type UsbDeviceEntry,
  type UsbSelector,
  VirtualUsbBackend,
  type VirtualUsbSource,
  waitForDevice,
  waitForGone,
} from './discovery.ts';
export {
  hex4,
  noSubsystemError,
  permissionHint,
  UDEV_RULE_FILE,
  UDEV_RULE_LINE,
  UsbError,
  type UsbErrorCode,
  UsbSelectorError,
} from './errors.ts';
export type { SetupPacket, UsbDeviceLike } from './types.ts';
