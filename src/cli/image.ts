import type { RegisterCommands } from './context.ts';

export const registerImageCommands: RegisterCommands = (program) => {
  program.command('image').description('inspect and convert firmware images');
};
