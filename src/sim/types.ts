/** Outcome of one control transfer on the virtual device's endpoint 0 (see board.ts). */
export type ControlResult =
  | { status: 'ok'; data?: Uint8Array; bytesWritten?: number } // data for IN transfers (never longer than wLength)
  | { status: 'stall' }
  | { status: 'timeout' } // the device stopped answering (fault injection)
  | { status: 'disconnected' }; // the device vanished (leave, reset, power off, fault)

export type BoardMode = 'off' | 'bootloader' | 'application' | 'silent';
