// What every console spec shares: its settings from the environment, the
// system's Chromium (never one playwright downloads), and the verdict on the
// browser errors it collected.
import { chromium } from 'playwright-core';

// env is a required setting; a missing one stops the spec at once.
export const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};

// launch starts /usr/bin/chromium headless, sandbox off (CI runs as root).
export const launch = () => chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-background-networking', '--disable-gpu', '--headless'],
});

// finish fails the spec when any browser error was collected, else says ok.
export const finish = (errors, ok) => {
  if (errors.length) {
    console.error(errors.join('\n'));
    process.exit(1);
  }
  console.log(`ok: ${ok}`);
};
