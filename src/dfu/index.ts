// Public API of the DfuSe host (USB DFU 1.1 + ST AN3156), written against UsbDeviceLike.
export { type DfuAlternate, DfuDevice, type DfuDeviceOptions, type DfuStats } from './device.ts';
export { type DfuProgress, Dfuse, type ProgressListener } from './dfuse.ts';
export { codeForStatus, DfuError } from './errors.ts';
export {
  DfuseHost,
  type FlashOptions,
  type FlashResult,
  type HostOptions,
  type OperationOptions,
} from './host.ts';
export { LINKTYPE_USB_LINUX_MMAPPED, type PcapngOptions, traceToPcapng } from './pcapng.ts';
export { type Permission, Permissions } from './permissions.ts';
export { describePlan, type FlashPlan, type PlanOptions, planFlash, type WriteRun } from './plan.ts';
export {
  DFU_REQUEST,
  DFU_STATE,
  DFU_STATE_NAMES,
  DFU_STATUS,
  DFU_STATUS_NAMES,
  DFUSE_COMMAND,
  type DfuFunctionalDescriptor,
  type DfuStatusReport,
  parseConfigurationDescriptor,
  parseFunctionalDescriptor,
  parseStatus,
  stateName,
  statusName,
} from './protocol.ts';
export { type DfuQuirks, quirksFor } from './quirks.ts';
export { DfuTrace, requestName, type TraceEntry } from './trace.ts';
export {
  compareImage,
  describeReport,
  mismatchLine,
  type VerifyMismatch,
  type VerifyReport,
  verifyError,
} from './verify.ts';
