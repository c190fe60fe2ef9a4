// Public API of the ST-LINK layer: STM32_Programmer_CLI (or the stand-in for virtual boards) over SWD.
export {
  allowMassErase,
  type ConnectMode,
  type ConnectOptions,
  connectArgs,
  type EraseTarget,
  eraseArgs,
  isMassErasePermission,
  listProbesArgs,
  type MassErasePermission,
  optionBytesDisplayArgs,
  type ResetMode,
  read32Args,
  resetArgs,
  uploadArgs,
  writeArgs,
} from './commands.ts';
export {
  type CrossCheckReport,
  type CrossCheckResult,
  compareThreeWays,
  crossCheckImage,
  flashRangesOf,
  type MemoryReader,
  type PairDiff,
  type RangeBytes,
  type Source,
  type Verdict,
} from './crosscheck.ts';
export { STLINK_ERROR_KINDS, StlinkError, type StlinkErrorCode } from './errors.ts';
export {
  type BoardIdentity,
  compareIdentity,
  describeIdentity,
  type IdentifyMismatch,
  identifyBoard,
} from './identify.ts';
export {
  CLI_NAME,
  type CliSource,
  cliFromPath,
  defaultInstallPatterns,
  type LocateOptions,
  locateProgrammerCli,
  type ProgrammerCli,
  virtualProgrammerCliPath,
} from './locate.ts';
export {
  classifyError,
  type MemoryDump,
  type Operation,
  type OperationKind,
  type OptionByte,
  type OptionBytesOfInterest,
  optionBytesOfInterest,
  type ParsedError,
  type ProbeInfo,
  type ProgrammerOutput,
  parseProgrammerOutput,
  primaryError,
  standingErrors,
  type TargetInfo,
} from './parse.ts';
export { type Identity, type StlinkOptions, StlinkProgrammer } from './programmer.ts';
export {
  checkRun,
  DEFAULT_CLI_DEADLINE_MS,
  DEFAULT_GRACE_MS,
  type RunOptions,
  type RunResult,
  runProgrammer,
} from './run.ts';
