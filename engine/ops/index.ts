/**
 * The operations layer: what every command of ebb does, as functions of an open engine that
 * take typed options and return plain data. The CLI prints that data; the server returns it as
 * JSON; neither holds logic of its own. Refusals are typed errors (engine/errors.ts).
 */
export { listSyncs, getSync, type SyncRow, type SyncDetail, type ListSyncsOptions } from './syncs.ts';
export { listRuns, getRun, type RunRow, type ListRunsOptions } from './runs.ts';
export { recordHistory, listRecords, type RecordHistoryOptions, type ListRecordsOptions } from './records.ts';
export { planSync, type SyncPlan, type PlanOptions } from './plan.ts';
export { triggerRun, runSyncs, chooseSyncs, exitCodeOf, type Selection, type TriggerOptions, type RunSyncsOptions, type RunSummary, type Skipped } from './run.ts';
export { syncMetrics, type SyncMetrics } from './metrics.ts';
export { pauseSync, resumeSync, revertSync, setOverrides, deleteSync, type LifecycleOptions, type LifecycleResult } from './lifecycle.ts';
export { resyncRecords, skipRecords, listInDoubt, resolveRecords, type ActorOptions } from './resync.ts';
export { deployProject, type DeployOptions, type DeployResult } from './deploy.ts';
export { queueRun, getRunRequest } from './requests.ts';
export { listAlerts, testChannels, checkAlerts, type AlertList, type ListAlertsOptions } from './alerts.ts';
