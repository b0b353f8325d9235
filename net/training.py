"""Training driver used by train_ssd.py: settings checks, the Estimator, train or
train_and_evaluate, and the NaN guard's message."""

import dataclasses
import os
import re
import time

import tensorflow as tf
from absl import logging

from net import hooks
from net import kernel_support
from net import model_fn as model_fn_lib
from net import run_config as run_config_lib
from net import time_budget
from net import validation
from utility import checkpoint
from utility import config as config_lib

NAN_CAUSES = ('Likely causes: a learning rate too high for this batch size or model (lower '
              '--learning_rate or lengthen --warmup_steps), training from scratch without '
              'batch norm, or corrupt boxes in the data (check with '
              'dataset/inspect_tfrecords.py).')


class TrainingDiverged(RuntimeError):
  """The loss became NaN or Inf; the message names the step and likely causes."""


# Model settings that change how the network runs, not its variables or its outputs beyond
# rounding: a run may resume on another machine with other values (checkpoints hold float32
# HWIO kernels in every case).
EXECUTION_SETTINGS = ('data_format', 'compute_dtype')


def check_resumable(ssd_config, model_dir):
  """A model_dir trained with other model settings cannot be resumed: say which differ."""
  path = os.path.join(model_dir, config_lib.CONFIG_FILENAME)
  if not os.path.isfile(path):
    return
  previous = config_lib.load(model_dir).model
  differences = [f.name for f in dataclasses.fields(previous)
                 if f.name not in EXECUTION_SETTINGS
                 and getattr(previous, f.name) != getattr(ssd_config.model, f.name)]
  if differences:
    raise ValueError('%s was trained with other model settings (%s); use a new --model_dir or '
                     'the same settings (%s).'
                     % (model_dir, ', '.join(differences),
                        ' '.join(_as_flag(name, getattr(previous, name)) for name in differences)))
  # The accumulators live in the checkpoint and the schedule counts global_step // K: another
  # K would find no accumulators (or stale ones) and shift every learning-rate boundary.
  before = config_lib.load(model_dir).train.gradient_accumulation_steps
  now = ssd_config.train.gradient_accumulation_steps
  if before != now and tf.train.latest_checkpoint(model_dir):
    raise ValueError('%s was trained with --gradient_accumulation_steps=%d; resume it with the '
                     'same value (not %d) or use a new --model_dir.' % (model_dir, before, now))


def _as_flag(name, value):
  name = config_lib.flag_name(name)
  if isinstance(value, bool):
    return '--%s%s' % ('' if value else 'no', name)
  if isinstance(value, tuple):
    value = ','.join(str(v) for v in value)
  return '--%s=%s' % (name, value)


def _log_start(ssd_config, model_dir):
  latest = tf.train.latest_checkpoint(model_dir)
  if latest:
    logging.info('Resuming from %s (step %d of %d).', latest,
                 checkpoint.checkpoint_step(model_dir), ssd_config.train.max_number_of_steps)
  elif ssd_config.train.checkpoint_path:
    logging.info('Fresh start: backbone from %s, the rest initialised randomly.',
                 ssd_config.train.checkpoint_path)
  else:
    logging.info('Fresh start from random initialisation (no --checkpoint_path).')


def _eval_progress(eval_input_fn):
  """Progress of each evaluation during training; dataset/input_fn.make_eval_input_fn's input
  carries its batch size and image count (another input_fn logs counts without an ETA)."""
  return hooks.EvaluationProgressHook(getattr(eval_input_fn, 'num_images', 0),
                                      getattr(eval_input_fn, 'batch_size', 1))


def _timed_part(make_estimator, train_config, train_input_fn, max_steps):
  """Trains to max_steps, timed; returns (StepTimerHook, seconds from the call to the end of
  the first step: what a start-up costs)."""
  timer = time_budget.StepTimerHook()
  began = time.time()
  make_estimator(train_config).train(train_input_fn, max_steps=max_steps, hooks=[timer])
  return timer, (timer.first_end or time.time()) - began


def _follow_time_budget(train_config, model_dir, make_estimator, train_input_fn, started):
  """train_config with the step count of model_dir's final time-budget plan
  (net/time_budget.py), training the warm-up and the commit part first where the plan is
  missing or provisional."""
  the_plan = time_budget.load(model_dir)
  if the_plan is not None and the_plan.final:
    logging.info('Following the time budget planned in %s: %d steps, decay boundaries %s.',
                 os.path.join(model_dir, time_budget.PLAN_FILENAME),
                 the_plan.max_number_of_steps, the_plan.boundaries_text() or 'none')
    return time_budget.apply(train_config, the_plan)
  accumulation = train_config.gradient_accumulation_steps
  done = checkpoint.checkpoint_step(model_dir)
  # A run resumed on a provisional plan counts what it had spent: the plan's time, and the
  # steps trained since at the plan's speed.
  spent_before = 0.0
  if the_plan is not None:
    spent_before = the_plan.elapsed_seconds + (
        max(done - the_plan.planned_at_step, 0) / max(the_plan.measured_steps_per_second, 1e-9))

  def elapsed():
    return spent_before + time.time() - started

  def timed_end(step):  # a part times at least MIN_TIMED_STEPS after its first step
    end = max(step, done + time_budget.MIN_TIMED_STEPS + 1)
    return end + -end % accumulation

  if the_plan is None:
    # The warm-up in micro-batches: its rate does not depend on the plan.
    calibration = timed_end(train_config.warmup_steps * accumulation)
    logging.info('Time budget %.4g minutes: timing steps %d to %d (the warm-up) to plan the '
                 'run.', train_config.train_time_budget_minutes, done + 1, calibration)
    timer, startup = _timed_part(make_estimator, train_config, train_input_fn, calibration)
    the_plan = time_budget.plan(train_config, elapsed(), startup, timer.steps_per_second,
                                calibration, final=False)
    if time_budget.commit_step(train_config, the_plan) == calibration:
      the_plan = dataclasses.replace(the_plan, final=True)
    time_budget.record(model_dir, the_plan, train_config.max_number_of_steps)
    done = calibration
  if not the_plan.final:
    commit = timed_end(time_budget.commit_step(train_config, the_plan))
    logging.info('Time budget: timing steps %d to %d to make the plan final.', done + 1, commit)
    timer, startup = _timed_part(make_estimator, time_budget.apply(train_config, the_plan),
                                 train_input_fn, commit)
    the_plan = time_budget.plan(train_config, elapsed(), startup, timer.steps_per_second,
                                commit, final=True)
    time_budget.record(model_dir, the_plan, train_config.max_number_of_steps)
  return time_budget.apply(train_config, the_plan)


def train(ssd_config, model_dir, train_input_fn, eval_input_fn=None,
          evaluate_during_training=False, throttle_secs=600):
  """Trains to max_number_of_steps (resuming from model_dir's last checkpoint).

  The input functions come from the caller (dataset/input_fn.py in train_ssd.py), which keeps
  net/ independent of the data layer.

  Args:
    ssd_config: utility.config.SSDConfig.
    model_dir: checkpoints, events and ssd_config.json.
    train_input_fn: Estimator input_fn(input_context=None) of training batches.
    eval_input_fn: input_fn of the evaluation set; needed for train_and_evaluate (periodic
      evaluation, and always under TF_CONFIG multi-worker training).
    evaluate_during_training: use tf.estimator.train_and_evaluate.
    throttle_secs: minimum seconds between evaluations.

  Returns:
    The global step reached.

  Raises:
    ValueError: bad settings; TrainingDiverged: NaN/Inf loss.
  """
  started = time.time()
  validation.validate(ssd_config)
  check_resumable(ssd_config, model_dir)
  # The settings as asked for are saved (compute_dtype 'auto' stays 'auto', so evaluation and a
  # resumed run on another machine choose again); the graph is built from what runs here.
  runtime_config = kernel_support.resolve_and_log(ssd_config, training=True)
  strategy, num_replicas = run_config_lib.make_strategy(ssd_config.train)
  run_config_lib.check_batch_divisible(ssd_config.train.batch_size, num_replicas)
  os.makedirs(model_dir, exist_ok=True)
  config_lib.save(ssd_config, model_dir)
  run_config_lib.log_replication(strategy, num_replicas)
  _log_start(ssd_config, model_dir)

  def make_estimator(train_config):
    return tf.estimator.Estimator(
        model_fn=model_fn_lib.make_model_fn(
            dataclasses.replace(runtime_config, train=train_config)),
        config=run_config_lib.make_run_config(model_dir, train_config, strategy))

  train_config = ssd_config.train
  try:
    if train_config.train_time_budget_minutes > 0:
      if run_config_lib.cluster_spec_from_env():
        raise ValueError('--train_time_budget_minutes plans one machine\'s run; with TF_CONFIG '
                         '(several workers) give --max_number_of_steps instead.')
      train_config = _follow_time_budget(train_config, model_dir, make_estimator,
                                         train_input_fn, started)
    estimator = make_estimator(train_config)
    max_steps = train_config.max_number_of_steps
    if evaluate_during_training or run_config_lib.cluster_spec_from_env():
      if eval_input_fn is None:
        raise ValueError('train_and_evaluate needs evaluation data: give --val_file_pattern.')
      tf.estimator.train_and_evaluate(
          estimator, tf.estimator.TrainSpec(train_input_fn, max_steps=max_steps),
          tf.estimator.EvalSpec(eval_input_fn, steps=None, start_delay_secs=0,
                                throttle_secs=throttle_secs,
                                hooks=[_eval_progress(eval_input_fn)]))
    else:
      estimator.train(train_input_fn, max_steps=max_steps)
  except tf.errors.InvalidArgumentError as error:
    if model_fn_lib.NAN_LOSS_MESSAGE not in error.message:
      raise
    step = re.search(r'at step\]?\s*\[?(\d+)', error.message)
    raise TrainingDiverged('Training stopped at step %s: the loss became NaN or Inf, so no '
                           'weights of that step were saved (the last checkpoint is intact). %s'
                           % (step.group(1) if step else '?', NAN_CAUSES)) from None
  return estimator.get_variable_value('global_step')
