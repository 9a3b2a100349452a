/** Debian's Chromium as the e2e tests launch it (deps.md §3): headless, fresh profile, no background traffic. */
export const CHROMIUM = '/usr/bin/chromium';

/** Debian's nginx, the proxy in front of the fleet test's edge processes (fleet.test.mjs). */
export const NGINX = '/usr/sbin/nginx';

/** Debian's Firefox ESR, driven by Puppeteer over WebDriver BiDi (firefox.test.mjs). */
export const FIREFOX = '/usr/bin/firefox-esr';

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Host candidates on loopback-only machines, for pages that open WebRTC connections (deps.md §3). */
export const WEBRTC_LOOPBACK_ARGS = [
  '--allow-loopback-in-peer-connection',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
];

/** The Firefox equivalent: gather loopback candidates and show real host addresses instead of mDNS names. */
export const FIREFOX_WEBRTC_LOOPBACK_PREFS = {
  'media.peerconnection.ice.loopback': true,
  'media.peerconnection.ice.obfuscate_host_addresses': false,
};
