/** Alerts as a user sees them: what fires now, the notifications sent, a test of each channel. */
import type { Engine } from '../engine.ts';
import { checkStale, firingAlerts, sendTest, type FiringAlert } from '../alerts/alerts.ts';
import type { Row } from '../warehouse/warehouse.ts';
import { UsageError } from '../errors.ts';

export interface ListAlertsOptions {
  sync?: string;
  /** Notifications, newest first (default 50). */
  limit?: number;
}

/** The shape of `ebb alerts --json`. */
export interface AlertList {
  firing: FiringAlert[];
  notifications: Row[];
}

/** The alerts firing now and the notifications sent, of one sync or all. */
export async function listAlerts(engine: Engine, options: ListAlertsOptions = {}): Promise<AlertList> {
  const limit = options.limit ?? 50;
  if (!Number.isInteger(limit) || limit <= 0) throw new UsageError(`limit ${String(options.limit)}: give a positive whole number`);
  const firing = (await firingAlerts(engine)).filter((a) => !options.sync || a.sync_name === options.sync);
  const notifications = await engine.sql.runAndRead('alert_notifications_list', { sync_name: options.sync ?? null, limit });
  return { firing, notifications };
}

/** Sends a test notification to every channel, or to one; says how each went. */
export async function testChannels(engine: Engine, channel?: string): Promise<Array<{ channel: string; success: boolean; error: string | null }>> {
  const names = Object.keys(engine.project.config.alerts.channels);
  if (names.length === 0) throw new UsageError('no channel under alerts.channels in ebb.yml');
  if (channel !== undefined && !names.includes(channel)) throw new UsageError(`unknown channel "${channel}"; the channels are: ${names.join(', ')}`);
  return sendTest(engine, channel);
}

/** Evaluates the rules that hold between runs (`no_success`) and notifies their changes. */
export async function checkAlerts(engine: Engine): Promise<void> {
  await checkStale(engine);
}
