"""Common start-up of the command-line scripts: oneDNN by job, graph mode and readable logs.

oneDNN (utility/onednn.py): an inference script applies its choice at its top, before
TensorFlow is imported, and ``setup()`` logs it; a training script calls ``decide_onednn`` once
its settings say which network it trains, which restarts it when the choice changes the
environment.

TF's Python logger keeps its own handler, so every Estimator message would be printed twice
(once as 'INFO:tensorflow:...' and once through absl). Its handler is dropped so messages go
through absl's one format, and TF's own chatter (graph finalized, checkpoint listeners, API
deprecation notices) is kept at WARNING unless --tf_verbose is set. The project's progress
lines (step, losses, lr, images/s, ETA; resume/restore; results) are absl INFO and always show.
"""

import logging as py_logging
import os
import sys

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


def decide_onednn(job, default_kernels_faster=False):
  """onednn.apply for a script that knows its network only once its flags are parsed, i.e.
  after TensorFlow was imported. TensorFlow reads part of its oneDNN setting at import (a
  process that sets TF_ENABLE_ONEDNN_OPTS=1 afterwards reports oneDNN on but trains the quick
  MobileNet at 27-29 instead of 39-44 images/s), so when the choice changes the variable this
  restarts the process with it (os.execv, before any work); the restarted process logs the
  reason."""
  before = os.environ.get(onednn.ENV)
  reason = onednn.apply(job, default_kernels_faster=default_kernels_faster)
  if os.environ.get(onednn.ENV) != before:
    logging.info('oneDNN: restarting with %s=%s, which TensorFlow reads when it is imported.',
                 onednn.ENV, os.environ[onednn.ENV])
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable] + sys.argv)
  logging.info('oneDNN: %s', reason)
