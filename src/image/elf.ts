// ELF32 little-endian ARM reader. Layout from the System V ABI "ELF" specification (TIS ELF 1.2: file
// header, program headers, section headers); EM_ARM = 40 from Arm IHI 0044 "ELF for the Arm Architecture".
// What a programmer writes is each PT_LOAD segment's file bytes at its physical (load) address p_paddr,
// exactly what `objcopy -O binary/ihex` emits; memsz beyond filesz (.bss) is not part of the image.
import { hex32 } from '../util/hex.ts';
import { FirmwareImage, ImageError } from './model.ts';

const EM_ARM = 40;
const PT_LOAD = 1;
const SHF_ALLOC = 0x2;
const SHT_NOBITS = 8;

/** e_machine values people actually hand us by mistake (TIS ELF 1.2 and the processor supplements). */
const MACHINES: Record<number, string> = {
  2: 'SPARC',
  3: 'x86 (i386)',
  8: 'MIPS',
  20: 'PowerPC',
  40: 'ARM (32-bit)',
  62: 'x86-64',
  83: 'AVR',
  94: 'Xtensa (ESP32)',
  183: 'AArch64',
  243: 'RISC-V',
};

const TYPES: Record<number, string> = {
  0: 'no file type',
  1: 'relocatable object',
  2: 'executable',
  3: 'shared object',
  4: 'core dump',
};

export function isElf(bytes: Uint8Array): boolean {
  return (
    bytes.length >= 4 && bytes[0] === 0x7f && bytes[1] === 0x45 && bytes[2] === 0x4c && bytes[3] === 0x46
  );
}

export function parseElf(bytes: Uint8Array, file: string): FirmwareImage {
  const fail = (
    code: string,
    message: string,
    details: Record<string, unknown> = {},
    hint?: string,
  ): never => {
    throw new ImageError(code, `${file}: ${message}`, { file, ...details }, hint);
  };
  const need = (offset: number, length: number, what: string) => {
    if (offset + length > bytes.length) {
      fail(
        'E_ELF_TRUNCATED',
        `${what} at byte offset ${offset} (${length} bytes) lies past the end of the ${bytes.length}-byte file`,
        { offset, length, size: bytes.length },
        'the file was cut short (interrupted copy or download); rebuild or fetch it again',
      );
    }
  };
  need(0, 20, 'the ELF identification');
  const cls = bytes[4];
  const le = bytes[5] === 1;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const machine = dv.getUint16(18, le);
  if (machine !== EM_ARM) {
    const name = MACHINES[machine] ?? `unknown machine ${machine}`;
    fail(
      'E_ELF_MACHINE',
      `ELF for ${name} (e_machine ${machine}${cls === 2 ? ', 64-bit' : ''}), not for a 32-bit ARM (Cortex-M) target`,
      { offset: 18, machine, machineName: name },
      'build the firmware with arm-none-eabi-gcc (or point at the firmware ELF, not a host program)',
    );
  }
  if (cls !== 1)
    fail('E_ELF_CLASS', `ELF class ${cls} at byte offset 4: only 32-bit ELF (class 1) is firmware`, {
      offset: 4,
    });
  if (!le)
    fail('E_ELF_ENDIAN', 'big-endian ARM ELF (byte offset 5): STM32 firmware is little-endian', {
      offset: 5,
    });
  need(0, 52, 'the ELF header');
  const type = dv.getUint16(16, true);
  if (type !== 2 && type !== 3) {
    fail(
      'E_ELF_TYPE',
      `ELF ${TYPES[type] ?? `type ${type}`} (byte offset 16), not a linked executable`,
      { offset: 16, type },
      type === 1 ? 'this is an object file; use the linked .elf the build produces' : undefined,
    );
  }
  const u32 = (o: number) => dv.getUint32(o, true);
  const u16 = (o: number) => dv.getUint16(o, true);
  const entry = u32(24);
  const phoff = u32(28);
  const shoff = u32(32);
  const phentsize = u16(42);
  const phnum = u16(44);
  const shentsize = u16(46);
  let shnum = u16(48);
  const shstrndx = u16(50);

  const img = new FirmwareImage('elf', file);
  img.entry = entry;
  img.meta.machine = 'ARM';
  img.meta.flags = u32(36);
  if (phnum > 0) need(phoff, phnum * phentsize, 'the program header table');
  if (phentsize < 32 && phnum > 0)
    fail('E_ELF_SYNTAX', `program header entries of ${phentsize} bytes (byte offset 42), 32 expected`, {
      offset: 42,
    });
  // Program headers first: a file cut short is reported where its load data ends, not at the section table.
  const loads: Array<{ offset: number; vaddr: number; paddr: number; filesz: number }> = [];
  for (let i = 0; i < phnum; i++) {
    const h = phoff + i * phentsize;
    if (u32(h) !== PT_LOAD) continue;
    const offset = u32(h + 4);
    const vaddr = u32(h + 8);
    const paddr = u32(h + 12);
    const filesz = u32(h + 16);
    if (filesz === 0) continue;
    need(offset, filesz, `the data of program header ${i}`);
    if (paddr + filesz > 0x1_0000_0000) {
      fail(
        'E_IMAGE_ADDRESS_RANGE',
        `program header ${i} (byte offset ${h}): ${filesz} bytes at ${hex32(paddr)} run past the 4 GiB address space`,
        { offset: h, address: paddr, length: filesz },
      );
    }
    loads.push({ offset, vaddr, paddr, filesz });
  }

  // Section headers: only to name what each segment holds; an image stripped of them still loads.
  type Section = { name: string; offset: number; size: number };
  const sections: Section[] = [];
  if (shoff !== 0 && shentsize >= 40) {
    if (shnum === 0) {
      need(shoff, 40, 'section header 0');
      shnum = u32(shoff + 20);
    }
    need(shoff, shnum * shentsize, 'the section header table');
    const strAt = shstrndx < shnum ? shoff + shstrndx * shentsize : -1;
    const strOff = strAt >= 0 ? u32(strAt + 16) : 0;
    const strSize = strAt >= 0 ? u32(strAt + 20) : 0;
    if (strAt >= 0) need(strOff, strSize, 'the section name table');
    for (let i = 1; i < shnum; i++) {
      const h = shoff + i * shentsize;
      const flags = u32(h + 8);
      const shType = u32(h + 4);
      const size = u32(h + 20);
      if (!(flags & SHF_ALLOC) || shType === SHT_NOBITS || size === 0) continue;
      sections.push({
        name: cString(bytes, strOff + u32(h), strOff + strSize) || `section ${i}`,
        offset: u32(h + 16),
        size,
      });
    }
  }

  for (const { offset, vaddr, paddr, filesz } of loads) {
    const held = sections
      .filter((s) => s.offset >= offset && s.offset < offset + filesz)
      .sort((a, b) => a.offset - b.offset)
      .map((s) => ({
        name: s.name,
        address: paddr + (s.offset - offset),
        size: Math.min(s.size, offset + filesz - s.offset),
      }));
    const names = held.map((s) => s.name);
    img.add({
      name: names.length ? names.join(',') : `load@${hex32(paddr)}`,
      address: paddr,
      data: bytes.subarray(offset, offset + filesz),
      source: {
        file,
        offset,
        ...(names.length ? { sections: names, sectionSpans: held } : {}),
      },
    });
    if (vaddr !== paddr) {
      const moved =
        (img.meta.relocated as Array<{ paddr: number; vaddr: number; sections: string[] }> | undefined) ?? [];
      moved.push({ paddr, vaddr, sections: names });
      img.meta.relocated = moved;
    }
  }
  return img;
}

function cString(bytes: Uint8Array, from: number, limit: number): string {
  let end = from;
  while (end < limit && bytes[end] !== 0) end++;
  return Buffer.from(bytes.subarray(from, end)).toString('latin1');
}
