/**
 * What the parent (netns.ts) and the device child process (netns-device.ts) agree on: the device's pinned ICE
 * ports, which the tc filters match, and the job lines sent to the device. Its own module so neither side
 * imports the other.
 */
import type { MethodSpec, SettingName } from './run.js';

/** The device's ICE ports: 0x5000–0x5fff, one u32 mask, below the namespace's ephemeral range. */
export const DEVICE_PORTS = { min: 0x5000, max: 0x5fff, mask: 0xf000 };

export interface DeviceJob {
  id: number;
  url: string;
  method: MethodSpec;
  gamma: number;
  rttMs: number;
  setting: SettingName;
  prompt: number[];
  maxNewTokens: number;
  seed: number;
}
