// Records real USB/IP traffic (Linux 6.1 vhci-hcd and the usbip tools against `stm32-hil sim serve`, in the
// lane's guest) and writes each TCP connection as the two byte sequences its sides sent:
//   node harness/e2e/capture.ts OUT             boots the guest (capture.sh, capture.yaml), OUT/usbip.pcapng
//   node harness/e2e/capture.ts OUT --from-pcap  only re-reads OUT/usbip.pcapng
// OUT/streams.json is what src/usbip/fixtures/linux-6.1-vhci.json holds.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { buildVm, DEFAULT_CACHE_DIR, missingPrerequisite, REPO_ROOT, runVm, warmCompileCache } from './vm.ts';

const out = path.resolve(process.argv[2] ?? 'usbip-capture');
const pcap = path.join(out, 'usbip.pcapng');
const here = path.join(REPO_ROOT, 'harness/e2e');

if (!process.argv.includes('--from-pcap')) {
  const missing = await missingPrerequisite();
  if (missing) throw new Error(missing);
  mkdirSync(out, { recursive: true });
  const image = await buildVm({ initScript: path.join(here, 'init.sh'), log: console.log });
  const cache = path.join(DEFAULT_CACHE_DIR, 'node-compile-cache');
  await warmCompileCache(cache, [
    [
      path.join(REPO_ROOT, 'bin/stm32-hil.js'),
      '--config',
      path.join(here, 'capture.yaml'),
      'sim',
      'serve',
      '--help',
    ],
  ]);
  const r = await runVm({
    image,
    shares: [
      { tag: 'hostroot', path: '/', readonly: true },
      { tag: 'repo', path: REPO_ROOT, readonly: true },
      { tag: 'out', path: out, readonly: false },
    ],
    env: {
      E2E_SCRIPT: path.join(here, 'capture.sh'),
      E2E_REPO: REPO_ROOT.replace(/\/$/, ''),
      E2E_COMPILE_CACHE: cache,
      E2E_CI: 'false',
    },
    timeoutMs: 15 * 60_000,
  });
  console.log(
    r.console
      .split('\n')
      .filter((l) => l.startsWith('E2E-'))
      .join('\n'),
  );
  console.log(`capture in ${pcap} (${(r.wallMs / 1000).toFixed(0)} s)`);
}

const fields = await execa('tshark', [
  '-r',
  pcap,
  '-T',
  'fields',
  '-e',
  'tcp.stream',
  '-e',
  'tcp.srcport',
  '-e',
  'tcp.payload',
]);
const streams = new Map<number, { client: string; server: string }>();
for (const line of fields.stdout.split('\n')) {
  const [stream, port, payload] = line.split('\t');
  if (!payload) continue;
  const s = streams.get(Number(stream)) ?? { client: '', server: '' };
  if (port === '3240') s.server += payload.replace(/:/g, '');
  else s.client += payload.replace(/:/g, '');
  streams.set(Number(stream), s);
}
writeFileSync(
  path.join(out, 'streams.json'),
  `${JSON.stringify(
    {
      source:
        'Linux 6.1.0 vhci-hcd, usbip and dfu-util 0.11 (Debian 12) against stm32-hil sim serve: harness/e2e/capture.ts',
      config: 'harness/e2e/capture.yaml',
      streams: [...streams.values()],
    },
    null,
    1,
  )}\n`,
);
console.log(`${streams.size} TCP streams in ${path.join(out, 'streams.json')}`);
