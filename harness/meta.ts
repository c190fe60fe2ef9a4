/**
 * What a test tells the reporters beyond pass/fail: its error code, measurements and attachments. Set through
 * `task.meta.hil` in the worker; read by harness/reporters/store-reporter.ts in the main process.
 */
export interface HilMeasurement {
  name: string;
  value: number;
  unit: string;
}

export interface HilTaskMeta {
  board: string;
  suite: string;
  errorCode?: string;
  /** 'infra' errors (relay, enumeration, lease) make the outcome 'broken', never a failed chip test. */
  errorKind?: string;
  details?: Record<string, unknown>;
  measurements?: HilMeasurement[];
}

declare module 'vitest' {
  interface TaskMeta {
    hil?: HilTaskMeta;
  }
}
