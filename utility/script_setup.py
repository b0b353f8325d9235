"""Common start-up of the command-line scripts: oneDNN by job, graph mode and readable logs.

``run(main, job)`` replaces ``absl.app.run(main)``: for job 'inference' it first decides oneDNN
on this CPU (utility/onednn.py), before TensorFlow runs anything, and ``setup()``, first in main,
logs that decision; a training script calls ``decide_onednn`` itself once its settings say which
network it trains.

TF's Python logger keeps its own handler, so every Estimator message would be printed twice
(once as 'INFO:tensorflow:...' and once through absl). Its handler is dropped so messages go
through absl's one format, and TF's own chatter (graph finalized, checkpoint listeners, API
deprecation notices) is kept at WARNING unless --tf_verbose is set. The project's progress
lines (step, losses, lr, images/s, ETA; resume/restore; results) are absl INFO and always show.
"""

import logging as py_logging

from absl import app
from absl import flags
from absl import logging

from utility import onednn

flags.DEFINE_bool('tf_verbose', False, "Show TensorFlow's INFO messages too.")


def setup(verbose=None):
  """Disables eager execution and configures logging; call first in a script's main()."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from tensorflow.python.util import deprecation  # pylint: disable=import-outside-toplevel
  verbose = flags.FLAGS.tf_verbose if verbose is None else verbose
  tf.compat.v1.disable_eager_execution()
  deprecation._PRINT_DEPRECATION_WARNINGS = verbose  # pylint: disable=protected-access
  tf_logger = tf.get_logger()
  tf_logger.handlers = []
  tf_logger.setLevel(py_logging.INFO if verbose else py_logging.WARNING)
  logging.set_verbosity(logging.INFO)
  decision = onednn.decision()
  if decision is not None:
    logging.info('oneDNN: %s', decision[1])


def decide_onednn(job, plain_full_width=False):
  """onednn.apply, logged; warns if TensorFlow had already decided otherwise (an op ran)."""
  from utility import hardware  # pylint: disable=import-outside-toplevel
  reason = onednn.apply(job, plain_full_width=plain_full_width)
  logging.info('oneDNN: %s', reason)
  if onednn.decision()[0] == '1' and not hardware.onednn_enabled():
    logging.warning('oneDNN stays off: TensorFlow had decided before %s was set.', onednn.ENV)


def run(main, job):
  """absl.app.run(main), after onednn.apply(job) for job 'inference' (a 'training' script
  calls decide_onednn in main)."""
  if job not in onednn.JOBS:
    raise ValueError('job must be one of %s, got %r.' % (', '.join(onednn.JOBS), job))
  if job == 'inference':
    onednn.apply(job)
  app.run(main)
