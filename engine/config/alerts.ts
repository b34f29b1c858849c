/** The zod schema of alerting in ebb.yml: rules, channels and the lifecycle events they receive. */
import { z } from 'zod';

const duration = z
  .string()
  .regex(/^\d+\s*(s|m|h|d)$/, 'must look like 30s, 15m, 2h or 1d')
  .refine((text) => Number.parseInt(text, 10) > 0, 'must be longer than 0');

/** The events a channel can receive. */
export const alertEvents = ['sync.run.started', 'sync.run.completed', 'sync.run.failed', 'sync.alert.firing', 'sync.alert.resolved'] as const;
export type AlertEvent = (typeof alertEvents)[number];

/** The run counts a volume rule can watch. */
export const volumeCounts = ['planned', 'sent', 'failed', 'source_rows'] as const;
export type VolumeCount = (typeof volumeCounts)[number];

/**
 * A rule is its settings, or `false` to turn off a rule that the project's defaults turn on (read
 * as null; not a union, so that a mistake in the settings is reported with its path).
 */
const rule = <T extends z.ZodType>(settings: T) => z.preprocess((v) => (v === false ? null : v), settings.nullable()).optional();

export const rulesSchema = z.strictObject({
  /** The run failed (an error, or no record of those that needed action got through). */
  run_failed: z.boolean().optional(),
  /** Failed records above a percentage of the records sent. */
  failed_records: rule(z.strictObject({ above_percent: z.number().min(0).max(100) })),
  /** Records in doubt (NEEDS_REVIEW) above a number. */
  needs_review: rule(z.strictObject({ above: z.number().int().nonnegative().default(0) })),
  /** The run took longer than a time, or than N times the median of the last runs. */
  run_time: rule(
    z
      .strictObject({ above: duration.optional(), above_median_times: z.number().positive().optional(), runs: z.number().int().min(2).default(10) })
      .refine((r) => r.above !== undefined || r.above_median_times !== undefined, 'give `above: <duration>`, `above_median_times: <number>`, or both'),
  ),
  /** A count of the run deviates from the average of the previous runs by more than a percentage. */
  volume: rule(
    z.strictObject({
      counts: z.array(z.enum(volumeCounts)).min(1).default(['source_rows']),
      deviation_percent: z.number().positive(),
      runs: z.number().int().positive().default(5),
    }),
  ),
  /** No successful run for longer than a time: a schedule that silently stopped. */
  no_success: rule(z.strictObject({ for: duration })),
});
export type AlertRules = z.infer<typeof rulesSchema>;

/** What every channel has: the events it receives, and how hard a notification is tried. */
const delivery = {
  /** Default: the alert events for slack and email, every event for a webhook. */
  events: z.array(z.enum(alertEvents)).min(1).optional(),
  timeout_seconds: z.number().positive().default(10),
  /** The waits before each retry of a failed notification; its length is the number of retries. */
  retry_delays_seconds: z.array(z.number().nonnegative()).default([1, 5, 15]),
};

export const channelSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('slack'), url: z.url({ protocol: /^https?$/, error: 'must be the http(s) URL of a Slack incoming webhook' }), ...delivery }),
  z.strictObject({
    type: z.literal('webhook'),
    url: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }),
    secret: z.string().min(16, 'must be at least 16 characters: a random string, such as the output of `openssl rand -hex 32`'),
    headers: z.record(z.string(), z.string()).optional(),
    ...delivery,
  }),
  z.strictObject({
    type: z.literal('email'),
    smtp: z.strictObject({
      host: z.string().min(1),
      // A number, or the text of one (from env_var()).
      port: z.coerce.number().int().positive().default(587),
      /** TLS from the start (port 465); otherwise STARTTLS when the server offers it. */
      secure: z.boolean().default(false),
      username: z.string().optional(),
      password: z.string().optional(),
    }),
    from: z.string().min(3),
    to: z.array(z.email({ error: 'must be an email address' })).min(1),
    ...delivery,
  }),
]);
export type ChannelConfig = z.infer<typeof channelSchema>;

/** A sync's alerting: its rules (over the project's) and the channels that hear about it. */
export const syncAlertsSchema = z.strictObject({
  rules: rulesSchema.optional(),
  /** Channel names; default: the project's `notify`. */
  notify: z.array(z.string().min(1)).optional(),
});
export type SyncAlerts = z.infer<typeof syncAlertsSchema>;

export const projectAlertsSchema = z.strictObject({
  channels: z.record(z.string().min(1), channelSchema).default({}),
  /** The rules of every sync, unless a sync says otherwise. */
  rules: rulesSchema.default({}),
  /** The channels that hear about every sync; default: all of them. */
  notify: z.array(z.string().min(1)).optional(),
});
export type ProjectAlerts = z.infer<typeof projectAlertsSchema>;
