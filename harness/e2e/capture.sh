#!/bin/sh
# Guest script of harness/e2e/capture.ts: records the USB/IP traffic between Linux 6.1's vhci-hcd and
# `stm32-hil sim serve` on the guest's loopback (tshark), for the framing tests' fixtures. Board 1-2 of
# capture.yaml stops answering DFU requests, so dfu-util's timeout makes the kernel send CMD_UNLINK.
set -u
OUT=$E2E_OUT
REPO=$E2E_REPO
NODE=$REPO/node_modules/node/bin/node
if [ -n "${E2E_COMPILE_CACHE:-}" ] && [ -d "$E2E_COMPILE_CACHE" ]; then
  cp -r "$E2E_COMPILE_CACHE" /tmp/node-compile-cache
  export NODE_COMPILE_CACHE=/tmp/node-compile-cache
fi
cd /tmp || exit 70
"$NODE" "$REPO/bin/stm32-hil.js" --config "$REPO/harness/e2e/capture.yaml" sim serve > "$OUT/serve.out" 2> "$OUT/serve.err" &
SERVE=$!
i=0
until usbip list -r 127.0.0.1 > /dev/null 2>&1; do
  i=$((i + 1)); [ $i -gt 900 ] && exit 1; sleep 0.1
done
tshark -q -i lo -f 'tcp port 3240' -w "$OUT/usbip.pcapng" > "$OUT/tshark.log" 2>&1 &
TSHARK=$!
i=0
until grep -q 'Capturing on' "$OUT/tshark.log" 2> /dev/null; do
  i=$((i + 1)); [ $i -gt 1200 ] && exit 1; sleep 0.1
done
sleep 1
usbip list -r 127.0.0.1 > "$OUT/list.log" 2>&1
usbip attach -r 127.0.0.1 -b 1-1 > "$OUT/attach.log" 2>&1
sleep 3
dfu-util -l > "$OUT/dfu-list.log" 2>&1
dfu-util -d 0483:df11 -a 0 -s 0x08000000:64 -U /tmp/up.bin > "$OUT/dfu-upload.log" 2>&1
usbip attach -r 127.0.0.1 -b 1-2 >> "$OUT/attach.log" 2>&1
sleep 3
timeout 30 dfu-util -d 0483:df11 -p 1-2 -a 0 -s 0x08000000:64 -U /tmp/up2.bin > "$OUT/dfu-hang.log" 2>&1
echo "dfu-util on the hung board: rc=$?" >> "$OUT/dfu-hang.log"
sleep 2
kill -INT $TSHARK
wait $TSHARK
kill -TERM $SERVE
wait $SERVE
exit 0
