/**
 * The appliance's configuration file (JSON): who it is and which segments it
 * serves. Validation is strict: unknown fields, wrong types and out-of-range
 * values are refused with a message naming the field, and nothing is applied.
 */
import { readFileSync } from 'node:fs';
import { ValidationError } from '../shared/errors.js';

export type ApplianceRole = 'sp' | 'tenant';

export interface SegmentConfig {
  /** Segment id, 1..4094: the tenant network's id end to end (and its cloud VLAN by default). */
  id: number;
  /** Human name of the production network. */
  name: string;
  /**
   * Existing interface bridged into the segment: the production network
   * (tenant side) or the cloud access port (SP side). Absent: the segment
   * exists only inside the appliance (bridge and TAP).
   */
  uplink?: string;
}

export interface ApplianceConfig {
  role: ApplianceRole;
  /** Appliance name, shown in status and logs. */
  name: string;
  segments: SegmentConfig[];
}

const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;

function fail(file: string, field: string, what: string): never {
  throw new ValidationError(`${file}: ${field}: ${what}`);
}

function checkKeys(file: string, at: string, obj: Record<string, unknown>, allowed: readonly string[]): void {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) fail(file, at === '' ? k : `${at}.${k}`, `unknown field (allowed: ${allowed.join(', ')})`);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Validate parsed JSON as an appliance configuration; `file` names the source in errors. */
export function parseApplianceConfig(raw: unknown, file = 'config'): ApplianceConfig {
  if (!isObject(raw)) fail(file, '(top level)', 'must be a JSON object');
  checkKeys(file, '', raw, ['role', 'name', 'segments']);
  const { role, name, segments } = raw;
  if (role !== 'sp' && role !== 'tenant') fail(file, 'role', `must be "sp" or "tenant", got ${JSON.stringify(role)}`);
  if (typeof name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(name)) {
    fail(file, 'name', 'must be 1-63 letters, digits, "_", "." or "-", starting with a letter or digit');
  }
  if (!Array.isArray(segments)) fail(file, 'segments', 'must be an array');
  const seen = new Set<number>();
  const uplinks = new Set<string>();
  const out: SegmentConfig[] = segments.map((s: unknown, i) => {
    const at = `segments[${i}]`;
    if (!isObject(s)) fail(file, at, 'must be an object');
    checkKeys(file, at, s, ['id', 'name', 'uplink']);
    if (typeof s.id !== 'number' || !Number.isInteger(s.id) || s.id < 1 || s.id > 4094) fail(file, `${at}.id`, 'must be an integer from 1 to 4094');
    if (seen.has(s.id)) fail(file, `${at}.id`, `duplicate segment id ${s.id}`);
    seen.add(s.id);
    if (typeof s.name !== 'string' || s.name.length < 1 || s.name.length > 63) fail(file, `${at}.name`, 'must be a string of 1-63 characters');
    const seg: SegmentConfig = { id: s.id, name: s.name };
    if (s.uplink !== undefined) {
      if (typeof s.uplink !== 'string' || !IFNAME.test(s.uplink)) fail(file, `${at}.uplink`, 'must be an interface name (1-15 letters, digits, "_", "." or "-")');
      if (uplinks.has(s.uplink)) fail(file, `${at}.uplink`, `interface ${s.uplink} is already the uplink of another segment`);
      uplinks.add(s.uplink);
      seg.uplink = s.uplink;
    }
    return seg;
  });
  return { role, name, segments: out };
}

/** Read and validate a configuration file. */
export function loadApplianceConfig(file: string): ApplianceConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ValidationError(`cannot read config file ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, { cause: e });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ValidationError(`${file}: not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  return parseApplianceConfig(raw, file);
}

/** Kernel names of a segment's bridge and TAP (stable, so a restart finds them). */
export function segmentLinkNames(id: number): { bridge: string; tap: string } {
  return { bridge: `nea-br${id}`, tap: `nea-tap${id}` };
}
