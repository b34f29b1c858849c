/**
 * Real Chromium for the browser tests: Debian's /usr/bin/chromium driven by playwright-core (a
 * browser download is not possible here; `.ci/run` installs the package when it is missing).
 */
import { chromium, type Browser } from 'playwright-core';
import { existsSync } from 'node:fs';

export const chromiumPath = process.env.EBB_CHROMIUM ?? '/usr/bin/chromium';

/** Launches Chromium headless; a missing browser is an error that says how to install it. */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(chromiumPath)) throw new Error(`no Chromium at ${chromiumPath}: install it (apt-get install chromium), or set EBB_CHROMIUM to its path`);
  return chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'] });
}
