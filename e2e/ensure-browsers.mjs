// Pretest: the e2e suite drives Debian's Chromium and Firefox ESR (never `playwright install`) and puts Debian's
// nginx in front of the fleet test's edges. Checks that they are installed; run as root (as CI is) it installs the
// missing ones with apt, otherwise it stops with the command.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { CHROMIUM, FIREFOX, NGINX } from './chromium.mjs';

const PACKAGES = ['chromium', 'firefox-esr', 'fonts-dejavu-core', 'nginx'];
const missing = [CHROMIUM, FIREFOX, NGINX].filter((p) => !existsSync(p));
if (missing.length === 0) process.exit(0);

const install = `apt-get install -y --no-install-recommends ${PACKAGES.join(' ')}`;
const say = (s) => process.stderr.write(`e2e: ${s}\n`);
say(`missing ${missing.join(' and ')}, which the end-to-end tests launch.`);

const isRoot = process.getuid?.() === 0;
const hasApt = spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status === 0;
if (!isRoot || !hasApt) {
  say(
    hasApt
      ? `install them, then run the tests again:\n\n  sudo apt-get update && sudo ${install}\n`
      : `this script installs them only with Debian's apt-get; install Chromium at ${CHROMIUM} and Firefox ESR at ` +
          `${FIREFOX} (Debian: apt-get update && ${install})`,
  );
  process.exit(1);
}

say(`running as root: apt-get update && ${install}`);
const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
for (const args of [
  ['update', '-q'],
  ['install', '-y', '-q', '--no-install-recommends', ...PACKAGES],
]) {
  const r = spawnSync('apt-get', args, { stdio: 'inherit', env });
  if (r.status !== 0) {
    say(`apt-get ${args[0]} failed (exit ${r.status ?? r.signal})`);
    process.exit(1);
  }
}
const still = [CHROMIUM, FIREFOX, NGINX].filter((p) => !existsSync(p));
if (still.length) {
  say(`apt-get finished but ${still.join(' and ')} is still missing`);
  process.exit(1);
}
