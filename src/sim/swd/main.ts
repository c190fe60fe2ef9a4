// Process entry of the STM32_Programmer_CLI stand-in (bin/virtual-stm32-programmer-cli.js).
import { runStandIn } from './standin.ts';

process.exitCode = await runStandIn(process.argv.slice(2), {
  env: process.env,
  write: (text) => process.stdout.write(text),
});
