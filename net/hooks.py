"""Training session hooks: console progress (step, losses, lr, images/s, ETA) and the step
tracker the NaN guard uses to name the failing step."""

import time

import tensorflow as tf
from absl import logging

tf1 = tf.compat.v1


def format_duration(seconds):
  seconds = int(max(seconds, 0))
  hours, rest = divmod(seconds, 3600)
  minutes, seconds = divmod(rest, 60)
  return '%dh%02dm%02ds' % (hours, minutes, seconds) if hours else '%dm%02ds' % (minutes, seconds)


class TrainingProgressHook(tf1.train.SessionRunHook):
  """Logs every `every_n_steps`: step/max, losses, lr, images/s, ETA.

  It fetches the global step on every run (cheap) so `last_step` always holds the last step
  that completed; train_ssd.py reports it when the NaN guard stops training.
  """

  def __init__(self, tensors, global_batch_size, max_steps, every_n_steps):
    self._tensors = dict(tensors)  # must contain 'step'; the rest are printed by name
    self._batch = global_batch_size
    self._max_steps = max_steps
    self._every = max(1, every_n_steps)
    self.last_step = None
    self._last_time = None
    self._last_logged_step = None

  def begin(self):
    self._last_time = None

  def before_run(self, run_context):
    del run_context
    return tf1.train.SessionRunArgs(self._tensors)

  def after_run(self, run_context, run_values):
    del run_context
    values = run_values.results
    step = int(values['step']) + 1  # the fetch saw the step before this run's increment
    self.last_step = step
    now = time.time()
    if self._last_time is None:
      self._last_time, self._last_logged_step = now, step
      self._log(values, step, None)
      return
    if step - self._last_logged_step >= self._every or step >= self._max_steps:
      steps_per_sec = (step - self._last_logged_step) / max(now - self._last_time, 1e-9)
      self._last_time, self._last_logged_step = now, step
      self._log(values, step, steps_per_sec)

  def _log(self, values, step, steps_per_sec):
    terms = ' '.join('%s %.4g' % (name, values[name]) for name in self._tensors
                     if name not in ('step', 'lr'))
    speed = ''
    if steps_per_sec:
      eta = (self._max_steps - step) / steps_per_sec
      speed = ' | %.1f images/s, ETA %s' % (steps_per_sec * self._batch, format_duration(eta))
    logging.info('step %d/%d | %s | lr %.3g%s', step, self._max_steps, terms, values['lr'],
                 speed)
