// Public API of the image layer: read any firmware image, check it against a part, write it back out.
export { type BinaryWriteOptions, DEFAULT_BASE, parseBinary, writeBinary } from './bin.ts';
export { baseNote, detectFormat, FORMAT_NAMES, parseImage, type ReadOptions, readImage } from './detect.ts';
export {
  DFU_SUFFIX_LENGTH,
  type DfuSuffix,
  type DfuWriteOptions,
  dfuCrc,
  parseDfuSuffixed,
  parseDfuse,
  readDfuSuffix,
  withDfuSuffix,
  writeDfuse,
} from './dfuse.ts';
export {
  describeSectors,
  dfuTargetsFor,
  diagnoseImage,
  flashOnly,
  flashOnlyCommand,
  type ImageDiagnosis,
  type ImageProblem,
  unflashableError,
} from './diagnose.ts';
export { parseElf } from './elf.ts';
export { type IntelHexWriteOptions, parseIntelHex, writeIntelHex } from './ihex.ts';
export {
  FirmwareImage,
  ImageError,
  type ImageFormat,
  type Segment,
  type SegmentSource,
  segmentEnd,
} from './model.ts';
export { parseSrec, type SrecWriteOptions, writeSrec } from './srec.ts';
export { type OutputFormat, outputFormat, type WriteOptions, writeImage } from './write.ts';
