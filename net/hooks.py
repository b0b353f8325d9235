"""Training session hooks: console progress (step, losses, lr, images/s, ETA) and the step
tracker the NaN guard uses to name the failing step."""

import time

import tensorflow as tf
from absl import logging

from utility import progress

tf1 = tf.compat.v1


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
    self._first = None  # (step, time) of the first run of this session
    self._last_values = None

  def before_run(self, run_context):
    del run_context
    return tf1.train.SessionRunArgs(self._tensors)

  def after_run(self, run_context, run_values):
    del run_context
    values = run_values.results
    step = int(values['step']) + 1  # the fetch saw the step before this run's increment
    self.last_step = step
    self._last_values = values
    now = time.time()
    if self._first is None:
      self._first = (step, now)
    if self._last_time is None:
      self._last_time, self._last_logged_step = now, step
      self._log(values, step, None)
      return
    if step - self._last_logged_step >= self._every or step >= self._max_steps:
      steps_per_sec = (step - self._last_logged_step) / max(now - self._last_time, 1e-9)
      self._last_time, self._last_logged_step = now, step
      self._log(values, step, steps_per_sec)

  def end(self, session):
    """Logs the closing paragraph of the run: steps, images, time, speed, last losses."""
    del session
    if self._first is None:
      return
    logging.info('%s', self.summary_paragraph(time.time()))

  def summary_paragraph(self, now):
    first_step, start = self._first
    steps = self.last_step - first_step + 1
    seconds = max(now - start, 1e-9)
    values = self._last_values
    terms = ', '.join('%s %.4g' % (name, values[name]) for name in self._tensors
                      if name not in ('step', 'lr'))
    return ('Training summary: steps %d to %d of %d (%d steps, %d images) in %s, %.2f images/s; '
            'at the last step %s, lr %.3g.'
            % (first_step, self.last_step, self._max_steps, steps, steps * self._batch,
               progress.format_duration(seconds), steps * self._batch / seconds, terms,
               values['lr']))

  def _log(self, values, step, steps_per_sec):
    terms = ' '.join('%s %.4g' % (name, values[name]) for name in self._tensors
                     if name not in ('step', 'lr'))
    speed = ''
    if steps_per_sec:
      eta = (self._max_steps - step) / steps_per_sec
      speed = ' | %.1f images/s, ETA %s' % (steps_per_sec * self._batch, progress.format_duration(eta))
    logging.info('step %d/%d | %s | lr %.3g%s', step, self._max_steps, terms, values['lr'],
                 speed)


class EvaluationProgressHook(tf1.train.SessionRunHook):
  """Logs evaluation progress (images done of num_images, images/s, ETA) as batches complete.

  Every session run of an evaluation is one batch of batch_size images (the last one may be
  smaller: the count is capped at num_images). num_images = 0 (unknown) logs counts only.
  """

  def __init__(self, num_images, batch_size, every_seconds=10.0, what='evaluation'):
    self._num_images = int(num_images or 0)
    self._batch_size = int(batch_size)
    self._every = every_seconds
    self._what = what
    self.progress = None

  def begin(self):
    self.progress = progress.Progress(self._what, self._num_images, 'images', self._every)

  def after_run(self, run_context, run_values):
    del run_context, run_values
    done = self.progress.done + self._batch_size
    if self._num_images:
      done = min(done, self._num_images)
    self.progress.update(done - self.progress.done)

  def end(self, session):
    del session
    self.progress.finish()
