"""Progress lines for the long commands (conversion, training, evaluation, export).

One format everywhere: ``<what>: <done>/<total> <unit> (<percent>) | <rate> <unit>/s | elapsed
<time>, ETA <time>``, logged through absl at most every ``every_seconds`` and once at the end, so a
user sees what runs, how far it is and when it ends, without a flood of lines on a fast job.
"""

import time

from absl import logging


def format_duration(seconds):
  """'4m05s', or '1h02m03s' from an hour on (negative durations print as 0m00s)."""
  seconds = int(max(seconds, 0))
  hours, rest = divmod(seconds, 3600)
  minutes, seconds = divmod(rest, 60)
  return '%dh%02dm%02ds' % (hours, minutes, seconds) if hours else '%dm%02ds' % (minutes, seconds)


class Progress(object):
  """Counts work done out of a known total and logs rate and ETA.

  Args:
    what: what is being done, the start of every line ('train: converting').
    total: how many units in all (0 or None: unknown, then no percent and no ETA).
    unit: the name of one unit ('images', 'batches').
    every_seconds: the shortest time between two lines (the first and the last always print).
    clock: seconds, monotonic (a test passes a fake one).
    log: where lines go (absl's logging.info by default).
    eta: print an ETA (off for units of unequal cost, e.g. the stages of an export).
  """

  def __init__(self, what, total, unit='images', every_seconds=10.0, clock=time.monotonic,
               log=None, eta=True):
    self.what = what
    self.total = int(total or 0)
    self.unit = unit
    self.done = 0
    self._every = every_seconds
    self._clock = clock
    self._log = log or (lambda line: logging.info('%s', line))
    self._start = clock()
    self._last_logged = None
    self._stopped = None
    self._eta = eta
    self._note = ''
    self.lines = []  # what was logged, for callers that summarise and for tests

  @property
  def elapsed(self):
    """Seconds since the start, up to finish() once it was called."""
    return (self._stopped if self._stopped is not None else self._clock()) - self._start

  def rate(self):
    """Units per second so far (0 before any time has passed)."""
    elapsed = self.elapsed
    return self.done / elapsed if elapsed > 0 else 0.0

  def line(self):
    """The current progress line."""
    if self.total:
      count = '%d/%d %s (%.0f%%)' % (self.done, self.total, self.unit,
                                     100.0 * self.done / self.total)
    else:
      count = '%d %s' % (self.done, self.unit)
    rate = self.rate()
    text = '%s: %s | %.1f %s/s | elapsed %s' % (self.what, count, rate, self.unit,
                                                 format_duration(self.elapsed))
    if self._eta and self.total and rate > 0 and self.done < self.total:
      text += ', ETA %s' % format_duration((self.total - self.done) / rate)
    return text + (' | %s' % self._note if self._note else '')

  def update(self, count=1, note=''):
    """Adds count units; logs when every_seconds have passed since the last line.

    note: what is being done now, appended to the line (e.g. the next stage of an export).
    """
    self.done += count
    self._note = note
    now = self._clock()
    if self._last_logged is None or now - self._last_logged >= self._every:
      self._emit(now)

  def finish(self, count=0, note=''):
    """Adds count units, stops the clock, logs the final line; returns the elapsed seconds."""
    self.done += count
    self._note = note or self._note
    self._stopped = self._clock()
    self._emit(self._stopped)
    return self.elapsed

  def _emit(self, now):
    self._last_logged = now
    text = self.line()
    self.lines.append(text)
    self._log(text)
