/**
 * The channels that notifications go to: a Slack incoming webhook, a signed webhook (the `webhook`
 * plugin's signature), and email over SMTP (nodemailer). A send is tried again after each of the
 * channel's `retry_delays_seconds`, each attempt within `timeout_seconds`; it never throws.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type * as Nodemailer from 'nodemailer';
import type { ChannelConfig, AlertEvent } from '../config/alerts.ts';
import type { ProjectConfig } from '../config/schema.ts';
import type { ConfigIssue } from '../errors.ts';
import { redact, type Secrets } from '../redact.ts';
import { send } from '../../plugins/shared/http.ts';
import { signedRequest } from '../../plugins/webhook/index.ts';
import type { RunCounts } from '../record/record.ts';
import { importModule } from '../import-module.ts';

/** The body of a webhook notification (README: "Webhook payloads"). */
export interface EventPayload {
  /** Unique per notification: the same on each retry (also the `Idempotency-Key` header). */
  id: string;
  event: AlertEvent | 'test';
  occurred_at: string;
  project: string;
  sync: string;
  run_id: string | null;
  trigger: string | null;
  /** The run's health once it finished; RUNNING when it started. */
  status: string | null;
  planned: Record<string, number> | null;
  counts: RunCounts | null;
  duration_ms: number | null;
  error: string | null;
  /** The run's page in `ebb serve` (`server.public_url`), or null. */
  url: string | null;
  alert: { rule: string; state: 'FIRING' | 'OK'; message: string } | null;
}

/** How a delivery went. */
export interface Delivery {
  success: boolean;
  attempts: number;
  error: string | null;
}

/** The events a channel receives. */
export function eventsOf(channel: ChannelConfig): readonly string[] {
  return channel.events ?? (channel.type === 'webhook' ? ['sync.run.started', 'sync.run.completed', 'sync.run.failed', 'sync.alert.firing', 'sync.alert.resolved'] : ['sync.alert.firing', 'sync.alert.resolved']);
}

/** One line for people (Slack, an email's subject). */
export function headline(p: EventPayload): string {
  const run = p.run_id ? ` run ${p.run_id}` : '';
  switch (p.event) {
    case 'sync.alert.firing':
      return `[ebb] FIRING ${p.alert!.rule} on ${p.sync}: ${p.alert!.message}`;
    case 'sync.alert.resolved':
      return `[ebb] resolved ${p.alert!.rule} on ${p.sync}: ${p.alert!.message}`;
    case 'sync.run.started':
      return `[ebb] ${p.sync}:${run} started (${p.trigger})`;
    case 'sync.run.completed':
      return `[ebb] ${p.sync}:${run} completed ${p.status} (${p.counts?.succeeded ?? 0} succeeded, ${p.counts?.failed ?? 0} failed)`;
    case 'sync.run.failed':
      return `[ebb] ${p.sync}:${run} failed: ${p.error ?? 'no record got through'}`;
    default:
      return `[ebb] test notification from project ${p.project}`;
  }
}

function text(p: EventPayload): string {
  return [headline(p), p.url ? `Run: ${p.url}` : null, `Project: ${p.project}`, `At: ${p.occurred_at}`].filter(Boolean).join('\n');
}

/** One attempt; a failure says whether another attempt can help. */
async function attempt(channel: ChannelConfig, payload: EventPayload): Promise<{ error: string; final: boolean } | null> {
  const timeoutMs = channel.timeout_seconds * 1000;
  if (channel.type === 'email') {
    // nodemailer loads when an email goes out, not with every command that reads the config.
    const { createTransport } = await importModule<typeof Nodemailer>('nodemailer');
    const transport = createTransport({
      host: channel.smtp.host,
      port: channel.smtp.port,
      secure: channel.smtp.secure,
      auth: channel.smtp.username ? { user: channel.smtp.username, pass: channel.smtp.password ?? '' } : undefined,
      connectionTimeout: timeoutMs,
      greetingTimeout: timeoutMs,
      socketTimeout: timeoutMs,
    });
    try {
      await transport.sendMail({ from: channel.from, to: channel.to, subject: headline(payload), text: text(payload) });
      return null;
    } catch (e) {
      // An SMTP server's 5xx refuses the message for good; anything else (4xx, the network) may pass later.
      const code = (e as { responseCode?: number }).responseCode;
      return { error: (e as Error).message, final: code !== undefined && code >= 500 };
    } finally {
      transport.close();
    }
  }
  const body = channel.type === 'slack' ? JSON.stringify({ text: text(payload) }) : JSON.stringify(payload);
  const request =
    channel.type === 'webhook'
      ? signedRequest({ ...channel, timeout_ms: timeoutMs }, channel.url, 'POST', body, { signature: 'X-Ebb-Signature', timestamp: 'X-Ebb-Timestamp' }, payload.id)
      : { url: new URL(channel.url), init: { method: 'POST', headers: { 'content-type': 'application/json' }, body } };
  const answer = await send(request.url, request.init, timeoutMs);
  if ('failure' in answer) return { error: answer.failure, final: answer.kind === 'rejected' };
  if (answer.status >= 200 && answer.status < 300) return null;
  const final = answer.status < 500 && answer.status !== 408 && answer.status !== 429;
  return { error: `answered ${answer.status}${answer.text ? `: ${answer.text.slice(0, 200)}` : ''}`, final };
}

/** Sends a notification to a channel, with its retries; never throws. The error is masked. */
export async function deliver(channel: ChannelConfig, payload: EventPayload): Promise<Delivery> {
  let attempts = 0;
  for (;;) {
    attempts += 1;
    let failure: { error: string; final: boolean } | null;
    try {
      failure = await attempt(channel, payload);
    } catch (e) {
      failure = { error: (e as Error).message, final: false };
    }
    if (!failure) return { success: true, attempts, error: null };
    const wait = channel.retry_delays_seconds[attempts - 1];
    if (failure.final || wait === undefined) return { success: false, attempts, error: redact(failure.error) };
    await sleep(wait * 1000);
  }
}

/**
 * The checks of the alerting config: channels named by `notify` exist, and channel credentials
 * come from env_var(). A Slack webhook's URL holds its token, so it is masked like a secret.
 */
export function channelIssues(config: ProjectConfig, secrets: Secrets): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const names = Object.keys(config.alerts.channels);
  const checkNotify = (notify: string[] | undefined, path: string) => {
    for (const name of notify ?? []) {
      if (!names.includes(name)) issues.push({ path, message: `unknown channel "${name}"; the channels under alerts.channels are: ${names.join(', ') || '(none)'}` });
    }
  };
  checkNotify(config.alerts.notify, 'alerts.notify');
  config.syncs.forEach((sync, i) => checkNotify(sync.alerts?.notify, `syncs[${i}].alerts.notify`));
  for (const [name, channel] of Object.entries(config.alerts.channels)) {
    const secret = channel.type === 'webhook' ? ['secret', channel.secret] : channel.type === 'email' ? ['smtp.password', channel.smtp.password] : null;
    if (secret?.[1] && secrets.secretIn(secret[1]) === undefined) {
      issues.push({ path: `alerts.channels.${name}.${secret[0]}`, message: `write it as {{ env_var('NAME') }}, with the value in an environment variable, so that it stays out of ebb.yml and is masked` });
    }
    if (channel.type === 'slack') secrets.add(new URL(channel.url).pathname);
  }
  return issues;
}
