"""--train_time_budget_minutes: the plan's arithmetic, its file, and training that follows it;
--learning_rate_decay=cosine."""

import dataclasses
import json
import math
import os

import numpy as np
import pytest
import tensorflow as tf

from net import hooks
from net import time_budget
from net import train_ops
from net import training
from tests.conftest import tiny_config, train_tiny
from utility import config as config_lib

tf1 = tf.compat.v1


def _train(**overrides):
  values = dict(batch_size=16, warmup_steps=50, max_number_of_steps=1800,
                decay_boundaries=(1280, 1610), lr_decay_factors=(1.0, 0.2, 0.04),
                train_time_budget_minutes=10.0)
  values.update(overrides)
  return config_lib.TrainConfig(**values)


def test_plan_fills_what_is_left_of_the_budget_and_scales_the_boundaries():
  # 600 s budget - 60 s spent - 20 s for one more start-up = 520 s at 5 steps/s: 2,600 steps
  # after the 50 of the warm-up. Boundaries at 1280/1800 and 1610/1800 of the run.
  plan = time_budget.plan(_train(), elapsed_seconds=60.0, startup_seconds=20.0,
                          steps_per_second=5.0, at_step=50, final=True)
  assert plan.max_number_of_steps == 2650
  assert plan.decay_boundaries == (1884, 2370)  # round(1884.44), round(2370.28)
  assert (plan.images_per_step, plan.planned_at_step, plan.elapsed_seconds) == (16, 50, 60.0)
  assert plan.flags() == ('--train_time_budget_minutes=0 --max_number_of_steps=2650 '
                          '--decay_boundaries=1884,2370')
  scaled = time_budget.apply(_train(), plan)
  assert (scaled.max_number_of_steps, scaled.decay_boundaries) == (2650, (1884, 2370))
  assert scaled.warmup_steps == 50 and scaled.lr_decay_factors == (1.0, 0.2, 0.04)


def test_plan_rounds_to_whole_optimizer_steps_and_never_undoes_the_warm_up():
  plan = time_budget.plan(_train(gradient_accumulation_steps=4), elapsed_seconds=0.0,
                          startup_seconds=0.0, steps_per_second=1.01, at_step=200, final=True)
  assert plan.max_number_of_steps == 200 + 604  # 606 more, cut to a multiple of 4
  spent = time_budget.plan(_train(), elapsed_seconds=700.0, startup_seconds=20.0,
                           steps_per_second=5.0, at_step=50, final=True)
  assert spent.max_number_of_steps == 50  # nothing left: training ends after the warm-up
  assert spent.decay_boundaries == (36, 45)


def test_the_commit_step_is_before_the_first_decay_and_leaves_room_to_time():
  provisional = time_budget.plan(_train(), 60.0, 20.0, 5.0, 50, final=False)
  assert time_budget.commit_step(_train(), provisional) == 1590  # 60% of 2,650 < 1,884
  early = _train(decay_boundaries=(400, 1610))  # the first decay at 22% of the run: 589
  assert time_budget.commit_step(early, time_budget.plan(early, 60.0, 20.0, 5.0, 50,
                                                         final=False)) == 589
  accumulating = _train(gradient_accumulation_steps=4)
  assert time_budget.commit_step(
      accumulating, time_budget.plan(accumulating, 60.0, 20.0, 5.0, 52, final=False)) == 1588
  short = time_budget.plan(_train(), 590.0, 5.0, 1.0, 50, final=False)  # 55 steps in all
  assert short.max_number_of_steps == 55
  assert time_budget.commit_step(_train(), short) == 50  # no room: the plan is final as it is


def test_a_run_far_shorter_than_the_nominal_one_is_warned_with_the_budget_that_fits():
  # An AVX2 CPU at 8.3 images/s: 12 minutes give about 350 steps of the nominal 1,800.
  train = _train(train_time_budget_minutes=12.0)
  slow = time_budget.plan(train, elapsed_seconds=120.0, startup_seconds=20.0,
                          steps_per_second=8.3 / 16, at_step=50, final=True)
  assert slow.max_number_of_steps == 50 + 300  # (720 - 140) s x 0.519 steps/s
  # 120 s spent + (1,800 - 50) steps / 0.519 steps/s = 3,493 s: 58.2 minutes.
  assert time_budget.short_run_warning(slow, 1800) == (
      "The time budget of 12 minutes gives 350 steps at this machine's 8.3 images/s, under "
      "half of the recipe's nominal 1800: expect a much weaker model. "
      "--train_time_budget_minutes=59 gives about the nominal count here.")
  assert time_budget.short_run_warning(dataclasses.replace(slow, final=False), 1800) == ''
  fast = time_budget.plan(train, 15.0, 5.0, 5.0, 50, final=True)
  assert fast.max_number_of_steps == 3550 and time_budget.short_run_warning(fast, 1800) == ''


def test_plan_file_round_trip_and_a_broken_file_is_named(tmp_path):
  plan = time_budget.plan(_train(), 60.0, 20.0, 5.0, 50, final=False)
  path = time_budget.save(str(tmp_path), plan)
  assert os.path.basename(path) == 'time_budget.json'
  saved = json.load(open(path))
  assert saved['max_number_of_steps'] == 2650 and saved['final'] is False
  assert time_budget.load(str(tmp_path)) == plan
  assert time_budget.load(str(tmp_path / 'elsewhere')) is None
  open(path, 'w').write('{"max_number_of_steps": 3}')
  with pytest.raises(ValueError, match='time_budget.json is not a time-budget plan.*delete it'):
    time_budget.load(str(tmp_path))


@pytest.mark.parametrize('overrides, message', [
    (dict(train_time_budget_minutes=-1.0), '--train_time_budget_minutes must be >= 0'),
    (dict(train_time_budget_minutes=1.0, warmup_steps=5),
     r'measures the speed during the warm-up: give --warmup_steps >= 11 \(got 5\)'),
    (dict(learning_rate_decay='linear'), "--learning_rate_decay must be one of piecewise, "
                                         "cosine, got 'linear'"),
])
def test_settings_a_budget_cannot_plan_are_refused(tiny_records, tmp_path, overrides, message):
  config = tiny_config(**overrides)
  with pytest.raises(ValueError, match=message):
    train_tiny(config, tiny_records['records'], str(tmp_path / 'model'))


def test_step_timer_times_after_the_first_step():
  times = iter([130.0, 131.0, 131.5, 132.0, 132.5])
  timer = time_budget.StepTimerHook(clock=lambda: next(times))
  assert timer.steps_per_second == 0.0
  for _ in range(5):
    timer.after_run(None, None)
  assert timer.first_end == 130.0
  assert timer.steps_after_first == 4 and timer.seconds_after_first == 2.5
  assert timer.steps_per_second == 1.6


def _rates(train_config, steps):
  with tf.Graph().as_default():
    step = tf1.placeholder(tf.int64, [])
    lr = train_ops.learning_rate_schedule(step, train_config)
    with tf1.Session() as session:
      return [session.run(lr, {step: s}) for s in steps]


def test_cosine_decay_after_the_warm_up():
  config = config_lib.TrainConfig(learning_rate=0.004, warmup_steps=50,
                                  warmup_learning_rate=0.0005, max_number_of_steps=250,
                                  end_learning_rate=1e-5, learning_rate_decay='cosine')
  got = _rates(config, [0, 49, 50, 100, 150, 250, 400])
  want = [0.0005, 0.0005, 0.004]
  want += [1e-5 + (0.004 - 1e-5) * 0.5 * (1 + math.cos(math.pi * t)) for t in (0.25, 0.5)]
  want += [1e-5, 1e-5]
  np.testing.assert_allclose(got, want, rtol=1e-6)
  # With accumulation the schedule counts optimizer steps: 1000 micro-batches / 4.
  accumulating = dataclasses.replace(config, max_number_of_steps=1000,
                                     gradient_accumulation_steps=4)
  np.testing.assert_allclose(_rates(accumulating, [150]), [want[4]], rtol=1e-6)


class _FixedClockPlans:
  """Stands in for time_budget.plan: records the measured arguments, then plans with the speed
  fixed at 2 steps/s and `spent` seconds gone per kind of plan (the real timing varies)."""

  def __init__(self, spent):
    self.spent = spent
    self.calls = []
    self.real = time_budget.plan

  def __call__(self, train_config, elapsed_seconds, startup_seconds, steps_per_second, at_step,
               final):
    self.calls.append((elapsed_seconds, startup_seconds, steps_per_second, at_step, final))
    return self.real(train_config, self.spent[final], 0.0, 2.0, at_step, final)


def _capture_step_lines(monkeypatch):
  lines = []
  monkeypatch.setattr(hooks, 'logging', type('Log', (), {
      'info': staticmethod(lambda fmt, *args: lines.append(fmt % args))}))
  return lines


def _budget_config(**overrides):
  # Nominal run: 40 steps, lr x0.1 at step 30 (75%), a 12-step warm-up at the base rate.
  values = dict(train_time_budget_minutes=0.5, warmup_steps=12, warmup_learning_rate=1e-3,
                max_number_of_steps=40, decay_boundaries=(30,), lr_decay_factors=(1.0, 0.1),
                save_checkpoints_steps=1000, save_summary_steps=1000)
  values.update(overrides)
  return tiny_config(**values)


def test_budgeted_training_warms_up_commits_and_follows_its_plan(tiny_records, tmp_path,
                                                                  monkeypatch):
  plans = _FixedClockPlans(spent={False: 0.0, True: 15.0})
  monkeypatch.setattr(time_budget, 'plan', plans)
  lines = _capture_step_lines(monkeypatch)
  model_dir = str(tmp_path / 'model')
  config = _budget_config()
  # Provisional plan at step 12: 12 + 30 s x 2 = 72 steps, decay at 54; the commit part runs
  # to 60% of it, step 43; the final plan there: 43 + (30 - 15) s x 2 = 73 steps, decay at 55.
  assert train_tiny(config, tiny_records['records'], model_dir) == 73
  assert [call[3:] for call in plans.calls] == [(12, False), (43, True)]
  for elapsed, startup, speed, _, _ in plans.calls:
    assert 0 < startup < elapsed and speed > 0
  assert plans.calls[1][0] > plans.calls[0][0]
  plan = time_budget.load(model_dir)
  assert (plan.max_number_of_steps, plan.decay_boundaries, plan.final) == (73, (55,), True)
  steps = {int(line.split()[1].split('/')[0]): line for line in lines
           if line.startswith('step ')}
  assert steps[12].startswith('step 12/40 ') and ' lr 0.001' in steps[12]  # the warm-up
  assert steps[13].startswith('step 13/72 ') and steps[43].startswith('step 43/72 ')
  assert steps[44].startswith('step 44/73 ') and ' lr 0.001' in steps[44]
  assert ' lr 0.001 ' in steps[55] + ' ' and ' lr 0.0001' in steps[56]
  assert steps[73].startswith('step 73/73 ') and ' lr 0.0001' in steps[73]
  # ssd_config.json keeps the settings as asked for; the plan is in its own file.
  assert config_lib.load(model_dir).train.max_number_of_steps == 40
  # A rerun (a resumed run) follows the final plan: no new timing, nothing more to train.
  assert train_tiny(config, tiny_records['records'], model_dir) == 73
  assert len(plans.calls) == 2


def test_a_run_resumed_on_a_provisional_plan_commits_from_where_it_is(tiny_records, tmp_path,
                                                                       monkeypatch):
  model_dir = str(tmp_path / 'model')
  config = _budget_config()
  plain = dataclasses.replace(config, train=dataclasses.replace(
      config.train, train_time_budget_minutes=0.0, max_number_of_steps=14))
  assert train_tiny(plain, tiny_records['records'], model_dir) == 14
  # As if killed at step 14 after a provisional plan made at step 12, 20 s into the run.
  time_budget.save(model_dir, time_budget.Plan(
      budget_minutes=0.5, measured_steps_per_second=2.0, images_per_step=4, planned_at_step=12,
      elapsed_seconds=20.0, max_number_of_steps=30, decay_boundaries=(22,), final=False))
  plans = _FixedClockPlans(spent={True: 25.0})
  monkeypatch.setattr(time_budget, 'plan', plans)
  # commit_step: 60% of 30 = 18 < 12 + 11, so the plan's own step 12; timed from 14: to 25.
  # Final plan at 25: 25 + (30 - 25) s x 2 = 35 steps.
  assert train_tiny(config, tiny_records['records'], model_dir) == 35
  (elapsed, _, _, at_step, final), = plans.calls
  assert (at_step, final) == (25, True)
  assert elapsed > 20.0 + 1.0  # the 20 s of the plan, 2 steps at 2 steps/s, and this run's


def test_a_budget_with_several_workers_is_refused(tiny_records, tmp_path, monkeypatch):
  monkeypatch.setenv('TF_CONFIG', json.dumps({
      'cluster': {'worker': ['localhost:1', 'localhost:2']}, 'task': {'type': 'worker',
                                                                      'index': 0}}))
  monkeypatch.setattr(training.run_config_lib, 'make_strategy', lambda train: (None, 1))
  config = tiny_config(train_time_budget_minutes=1.0, warmup_steps=12)
  with pytest.raises(ValueError, match="--train_time_budget_minutes plans one machine's run"):
    train_tiny(config, tiny_records['records'], str(tmp_path / 'model'))
