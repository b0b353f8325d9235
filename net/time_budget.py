"""Training for a time instead of a step count (--train_time_budget_minutes; not in the reference).

CPUs differ ten times in training speed (the quick model: 8 images/s on a 2-core AVX2 EPYC,
about 75 with bfloat16 on a 2-core Zen 5), so a fixed step count that fits 15 minutes on one
takes two hours on another. With a budget, training runs in three parts, each timed by
StepTimerHook:

1. the warm-up (--warmup_steps, whose learning rate does not depend on the step count) gives
   a provisional plan: the steps that fit in what is left of the budget after the time already
   spent and one more start-up (each part builds the graph and restores the checkpoint again);
2. training goes on at the base learning rate to ``commit_step`` (60% of the provisional run,
   and never past its first decay boundary, so the learning rate so far is that of any plan),
   and the speed measured there, over minutes rather than seconds, gives the final plan (a
   machine that slowed down or sped up since the warm-up is caught here);
3. the rest, to the final plan's step count.

The schedule keeps its shape: --max_number_of_steps and --decay_boundaries as given are the
nominal run, and every boundary scales with the planned count (a boundary at 71% of the
nominal run stays at 71%); the cosine decay ends at the planned count (its rate steps slightly
at the commit when the plan changes there); the warm-up stays in steps. Each plan is written
to <model_dir>/time_budget.json before the next part starts, so a killed run resumes to the
same step count and schedule, and the log gives the flags of the same schedule as a fixed
step count. The step count, and so the mAP, depends on the machine's speed.

Each part builds a new input pipeline; with --tf_random_seed its sequence is seeded by the step
the part starts from (dataset/input_fn.seed_at_step), so the later parts go on to new shuffles
and augmentations, and the fixed-step flags give the same schedule with other images after the
first part, not the same weights.
"""

import dataclasses
import json
import math
import os
import time

import tensorflow as tf
from absl import logging

from utility import file_io

tf1 = tf.compat.v1

PLAN_FILENAME = 'time_budget.json'
# Steps timed at least: the warm-up must be this long for a budget (the first step of a
# session builds kernels and fills the input pipeline, so it is not timed).
MIN_TIMED_STEPS = 10


def check(train_config):
  """Raises ValueError naming the flag when a budget cannot be planned."""
  budget = train_config.train_time_budget_minutes
  if budget < 0:
    raise ValueError('--train_time_budget_minutes must be >= 0 (0 = no budget), got %s.'
                     % budget)
  if budget > 0 and train_config.warmup_steps < MIN_TIMED_STEPS + 1:
    raise ValueError('--train_time_budget_minutes measures the speed during the warm-up: give '
                     '--warmup_steps >= %d (got %d).'
                     % (MIN_TIMED_STEPS + 1, train_config.warmup_steps))


class StepTimerHook(tf1.train.SessionRunHook):
  """Times a training session's steps.

  Attributes:
    first_end: clock() at the end of the session's first step (kernels built, input filled).
    steps_after_first, seconds_after_first: steps and seconds since first_end.
  """

  def __init__(self, clock=time.time):
    self._clock = clock
    self.first_end = None
    self.last_end = None
    self.steps_after_first = 0

  def after_run(self, run_context, run_values):
    del run_context, run_values
    now = self._clock()
    if self.first_end is None:
      self.first_end = now
    else:
      self.steps_after_first += 1
    self.last_end = now

  @property
  def seconds_after_first(self):
    return (self.last_end - self.first_end) if self.first_end is not None else 0.0

  @property
  def steps_per_second(self):
    if self.steps_after_first == 0 or self.seconds_after_first <= 0:
      return 0.0
    return self.steps_after_first / self.seconds_after_first


@dataclasses.dataclass(frozen=True)
class Plan:
  """The step count a budget gives and how it was derived (the JSON of time_budget.json).

  final is False for the provisional plan of the warm-up, True once the commit part has
  re-measured the speed; elapsed_seconds is the budget spent when the plan was made (a resumed
  run counts from there).
  """
  budget_minutes: float
  measured_steps_per_second: float
  images_per_step: int
  planned_at_step: int
  elapsed_seconds: float
  max_number_of_steps: int
  decay_boundaries: tuple
  final: bool

  @property
  def images_per_second(self):
    return self.measured_steps_per_second * self.images_per_step

  def boundaries_text(self):
    return ','.join(str(b) for b in self.decay_boundaries)

  def flags(self):
    """The flags of this schedule with a fixed step count (one part, so its images come in
    another order than the budgeted run's)."""
    flags = ['--train_time_budget_minutes=0', '--max_number_of_steps=%d' % self.max_number_of_steps]
    if self.decay_boundaries:
      flags.append('--decay_boundaries=' + self.boundaries_text())
    return ' '.join(flags)


def scaled_boundaries(train_config, total_steps):
  """--decay_boundaries scaled from the nominal --max_number_of_steps to total_steps."""
  nominal = train_config.max_number_of_steps
  return tuple(int(round(b * total_steps / nominal)) for b in train_config.decay_boundaries)


def plan(train_config, elapsed_seconds, startup_seconds, steps_per_second, at_step, final):
  """A Plan for the rest of a budgeted run.

  Args:
    train_config: utility.config.TrainConfig with train_time_budget_minutes > 0 (the nominal
      max_number_of_steps and decay_boundaries).
    elapsed_seconds: wall time the run has spent so far.
    startup_seconds: what one more start-up costs (graph, session, restore, first step).
    steps_per_second: measured training speed.
    at_step: the global step reached.
    final: whether this is the final plan (else the provisional one of the warm-up).

  Returns:
    Plan; its max_number_of_steps is at least at_step and a multiple of
    gradient_accumulation_steps (micro-batches).
  """
  budget = train_config.train_time_budget_minutes * 60.0
  left = budget - elapsed_seconds - startup_seconds
  total = at_step + int(max(left, 0.0) * steps_per_second)
  accumulation = train_config.gradient_accumulation_steps
  total = max(total - total % accumulation, at_step)
  return Plan(budget_minutes=train_config.train_time_budget_minutes,
              measured_steps_per_second=round(steps_per_second, 4),
              images_per_step=train_config.batch_size, planned_at_step=at_step,
              elapsed_seconds=round(elapsed_seconds, 1), max_number_of_steps=total,
              decay_boundaries=scaled_boundaries(train_config, total), final=final)


# Where the provisional plan is re-measured: this fraction of its steps.
COMMIT_FRACTION = 0.6


def commit_step(train_config, provisional):
  """The step of the commit part's end: COMMIT_FRACTION of the provisional run, at most its
  first decay boundary (steps before it run at the base rate in any plan), in whole optimizer
  steps; the provisional plan's own start when there is no room for MIN_TIMED_STEPS."""
  step = int(provisional.max_number_of_steps * COMMIT_FRACTION)
  if provisional.decay_boundaries:
    step = min(step, provisional.decay_boundaries[0])
  step -= step % train_config.gradient_accumulation_steps
  if step < provisional.planned_at_step + MIN_TIMED_STEPS + 1:
    return provisional.planned_at_step
  return step


def apply(train_config, the_plan):
  """train_config with the plan's step count and boundaries (the budget stays recorded)."""
  return dataclasses.replace(train_config, max_number_of_steps=the_plan.max_number_of_steps,
                             decay_boundaries=tuple(the_plan.decay_boundaries))


def save(model_dir, the_plan):
  path = os.path.join(model_dir, PLAN_FILENAME)
  file_io.atomic_write(path, json.dumps(dataclasses.asdict(the_plan), indent=2) + '\n', 'w')
  return path


def load(model_dir):
  """The Plan saved in model_dir, or None.

  Raises:
    ValueError: naming the file when it is unreadable (delete it to plan again).
  """
  path = os.path.join(model_dir, PLAN_FILENAME)
  if not os.path.isfile(path):
    return None
  try:
    with open(path, encoding='utf-8') as f:
      values = json.load(f)
    values['decay_boundaries'] = tuple(values['decay_boundaries'])
    return Plan(**values)
  except (ValueError, TypeError, KeyError) as error:
    raise ValueError('%s is not a time-budget plan (%s); delete it to measure the speed again.'
                     % (path, error)) from None


def describe(the_plan, nominal_steps):
  """The log line of a new plan."""
  return ('Time budget %.4g minutes, %s plan at step %d (%s spent): %.1f images/s measured, so '
          'training runs %d steps (%d images; the nominal schedule has %d) with decay '
          'boundaries %s. Saved in %s%s'
          % (the_plan.budget_minutes, 'final' if the_plan.final else 'provisional',
             the_plan.planned_at_step, _minutes(the_plan.elapsed_seconds),
             the_plan.images_per_second, the_plan.max_number_of_steps,
             the_plan.max_number_of_steps * the_plan.images_per_step, nominal_steps,
             the_plan.boundaries_text() or 'none', PLAN_FILENAME,
             '; the same schedule as a fixed step count: ' + the_plan.flags()
             if the_plan.final else '.'))


def _minutes(seconds):
  return '%dm%02ds' % divmod(int(round(seconds)), 60)


# A final plan under this fraction of the nominal steps gets a warning: the recipe's schedule
# was set for about the nominal length (the quick model on the synthetic demo data, float32:
# mAP 0.02 after 350 steps, 0.67 after its nominal 1,800; README).
SHORT_RUN_FRACTION = 0.5


def short_run_warning(the_plan, nominal_steps):
  """The warning for a final plan far shorter than the nominal run, or ''."""
  if not the_plan.final or the_plan.max_number_of_steps >= SHORT_RUN_FRACTION * nominal_steps:
    return ''
  speed = max(the_plan.measured_steps_per_second, 1e-9)
  minutes = (the_plan.elapsed_seconds + (nominal_steps - the_plan.planned_at_step) / speed) / 60
  return ('The time budget of %.4g minutes gives %d steps at this machine\'s %.1f images/s, '
          'under half of the recipe\'s nominal %d: expect a much weaker model. '
          '--train_time_budget_minutes=%d gives about the nominal count here.'
          % (the_plan.budget_minutes, the_plan.max_number_of_steps, the_plan.images_per_second,
             nominal_steps, math.ceil(minutes)))


def record(model_dir, the_plan, nominal_steps):
  """Saves a new plan in model_dir and logs it (with the short-run warning, if any)."""
  save(model_dir, the_plan)
  logging.info('%s', describe(the_plan, nominal_steps))
  warning = short_run_warning(the_plan, nominal_steps)
  if warning:
    logging.warning('%s', warning)
