// How a project's stored settings read: the label schema and the schedule completed with defaults
// (older rows may lack newer fields), and its preparation as the API shows it. Pure functions that
// the project, rating, round, snapshot and import services share.
import { Compile } from 'typebox/compile';
import { Value } from 'typebox/value';
import type { Project } from '../db/client.js';
import {
  defaultLabelSchema,
  defaultSchedule,
  LabelSchema,
  PREPARING_PHASES,
  ScheduleSchema,
  type Preparing,
  type PromotionRule,
  type QueueOrder,
  type Schedule,
} from '../schemas/projects.js';

/** Compiled once: every submission checks its project's label schema. */
const labelSchemaValidator = Compile(LabelSchema);

/** The stored label schema, completed with defaults (older rows may lack newer fields). */
export function labelSchemaOf(project: Pick<Project, 'labelSchema'>): LabelSchema {
  const merged = { ...defaultLabelSchema(), ...((project.labelSchema ?? {}) as object) };
  return labelSchemaValidator.Check(merged) ? merged : defaultLabelSchema();
}

/** The stored schedule, completed with defaults. */
export function scheduleOf(project: Pick<Project, 'schedule'>): Schedule {
  const merged = { ...defaultSchedule(), ...((project.schedule ?? {}) as object) };
  return Value.Check(ScheduleSchema, merged) ? merged : defaultSchedule();
}

/** How a project's new versions are judged for promotion: the schedule's fields, with defaults. */
export interface PromotionSettings {
  rule: PromotionRule;
  autoPromote: boolean;
  /** The human rule: the lower end of the 95% interval must be above this. */
  margin: number;
  minVotes: number;
  countSimulated: boolean;
  /** The reward-model rule: its win rate must be at least 0.5 + this. */
  rewardModelMargin: number;
}

export function promotionOf(project: Pick<Project, 'schedule'>): PromotionSettings {
  const schedule = scheduleOf(project);
  const defaults = defaultSchedule();
  return {
    rule: schedule.promotionRule ?? defaults.promotionRule!,
    autoPromote: schedule.autoPromote,
    margin: schedule.promotionMargin ?? defaults.promotionMargin!,
    minVotes: schedule.minVotes ?? defaults.minVotes!,
    countSimulated: schedule.countSimulated ?? defaults.countSimulated!,
    rewardModelMargin: schedule.promoteMargin,
  };
}

/** The rating queue's order: `fixed` (the priorities as set) unless the schedule says `uncertainty`. */
export function queueOrderOf(project: Pick<Project, 'schedule'>): QueueOrder {
  return scheduleOf(project).queueOrder ?? 'fixed';
}

/** The project's preparation as the API shows it (null when nothing is being prepared). */
export function preparingOf(project: Pick<Project, 'preparingPhase' | 'preparingProgress'>): Preparing {
  const phase = PREPARING_PHASES.find((known) => known === project.preparingPhase);
  if (!phase) return null;
  return { phase, progress: Math.min(1, Math.max(0, project.preparingProgress)) };
}
