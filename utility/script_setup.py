"""Common start-up of the command-line scripts: graph mode and readable logs.

TF's Python logger keeps its own handler, so every Estimator message would be printed twice
(once as 'INFO:tensorflow:...' and once through absl). Its handler is dropped so messages go
through absl's one format, and TF's own chatter (graph finalized, checkpoint listeners, API
deprecation notices) is kept at WARNING unless --tf_verbose is set. The project's progress
lines (step, losses, lr, images/s, ETA; resume/restore; results) are absl INFO and always show.
"""

import logging as py_logging

from absl import flags
from absl import logging

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
