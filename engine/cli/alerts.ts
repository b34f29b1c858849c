/** `ebb alerts`: the alert states and the notification history; `check` and `test` send. */
import type { Command } from 'commander';
import { action, common, print, withEngine, type CommonOptions } from './common.ts';
import { checkAlerts, listAlerts, testChannels } from '../ops/index.ts';
import { ExitCode } from '../errors.ts';
import { toJson } from '../redact.ts';

interface AlertsOptions extends CommonOptions {
  sync?: string;
  limit: string;
}

export function register(program: Command): void {
  const alerts = program.command('alerts').description('alert states and notifications: list (the default), test, check');
  common(
    alerts
      .command('list', { isDefault: true })
      .description('the alerts firing now and the notifications sent (newest first)')
      .option('--sync <sync>', 'only this sync')
      .option('--limit <n>', 'notifications to show', '50'),
  ).action(
    action(async (options: AlertsOptions) =>
      withEngine(
        options,
        async (engine) => {
          const { firing, notifications } = await listAlerts(engine, { sync: options.sync, limit: Number(options.limit) });
          if (options.json) {
            process.stdout.write(toJson({ firing, notifications }, 2) + '\n');
            return;
          }
          process.stdout.write(firing.length ? 'Firing:\n' : 'No alert is firing.\n');
          if (firing.length) print(firing.map((a) => ({ ...a })), options, ['sync_name', 'rule', 'since', 'message']);
          process.stdout.write('\nNotifications:\n');
          print(notifications, options, ['sent_at', 'event', 'sync_name', 'rule', 'run_id', 'channel', 'success', 'attempts', 'error']);
        },
        { readOnly: true },
      ),
    ),
  );
  common(alerts.command('test').description('send a test notification to each channel (or one), and say how each went').argument('[channel]', 'only this channel')).action(
    action(async (channel: string | undefined, options: CommonOptions) =>
      withEngine(options, async (engine) => {
        const results = await testChannels(engine, channel);
        if (options.json) process.stdout.write(toJson(results, 2) + '\n');
        else for (const r of results) process.stdout.write(`${r.channel}: ${r.success ? 'sent' : `FAILED: ${r.error}`}\n`);
        return results.every((r) => r.success) ? ExitCode.healthy : ExitCode.failed;
      }),
    ),
  );
  common(alerts.command('check').description('evaluate the no_success rules now and notify their changes (the scheduler and worker do this on their own)'), false).action(
    action(async (options: CommonOptions) => withEngine(options, (engine) => checkAlerts(engine))),
  );
}
