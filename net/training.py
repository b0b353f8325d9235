"""Training driver used by train_ssd.py: settings checks, the Estimator, train or
train_and_evaluate, and the NaN guard's message."""

import dataclasses
import os
import re

import tensorflow as tf
from absl import logging

from net import kernel_support
from net import layers
from net import model_fn as model_fn_lib
from net import model_spec
from net import run_config as run_config_lib
from net import ssd_net
from utility import config as config_lib
from utility import matcher
from utility import ssd_flags

NAN_CAUSES = ('Likely causes: a learning rate too high for this batch size or model (lower '
              '--learning_rate or lengthen --warmup_steps), training from scratch without '
              'batch norm, or corrupt boxes in the data (check with '
              'dataset/inspect_tfrecords.py).')


class TrainingDiverged(RuntimeError):
  """The loss became NaN or Inf; the message names the step and likely causes."""


def validate(ssd_config):
  """Raises ValueError with a fix for inconsistent settings (checked before any work)."""
  train = ssd_config.train
  if len(train.lr_decay_factors) != len(train.decay_boundaries) + 1:
    raise ValueError('--lr_decay_factors needs one more value than --decay_boundaries (%d vs '
                     '%d).' % (len(train.lr_decay_factors), len(train.decay_boundaries)))
  if list(train.decay_boundaries) != sorted(train.decay_boundaries):
    raise ValueError('--decay_boundaries must increase, got %s.' % (train.decay_boundaries,))
  if train.batch_size < 1 or train.max_number_of_steps < 1:
    raise ValueError('--batch_size and --max_number_of_steps must be >= 1.')
  model = ssd_config.model
  if not 0 <= model.neg_threshold <= model.match_threshold <= 1:
    raise ValueError('Need 0 <= --neg_threshold <= --match_threshold <= 1, got %s and %s.'
                     % (model.neg_threshold, model.match_threshold))
  if model.extra_layer_padding not in ssd_net.EXTRA_LAYER_PADDINGS:
    raise ValueError('--extra_layer_padding must be one of %s, got %r.'
                     % (', '.join(ssd_net.EXTRA_LAYER_PADDINGS), model.extra_layer_padding))
  layers.kernel_initializer(train.weight_init)  # raises naming --weight_init
  if model.bipartite_matching not in matcher.BIPARTITE_MODES:
    raise ValueError('--bipartite_matching must be one of %s, got %r.'
                     % (', '.join(matcher.BIPARTITE_MODES), model.bipartite_matching))
  if train.checkpoint_path and model.width_multiplier != 1.0:
    raise ValueError('--checkpoint_path (ImageNet VGG16) needs --width_multiplier=1.0, got %s.'
                     % model.width_multiplier)
  if train.checkpoint_path and model.backbone_batch_norm:
    raise ValueError('--checkpoint_path (ImageNet VGG16) has no batch norm: drop '
                     '--backbone_batch_norm.')
  if model.data_format not in ('NHWC', 'NCHW'):
    raise ValueError("--data_format must be NHWC/channels_last or NCHW/channels_first, got %r."
                     % model.data_format)
  if model.compute_dtype not in kernel_support.COMPUTE_DTYPES:
    raise ValueError('--compute_dtype must be one of %s, got %r.'
                     % (', '.join(kernel_support.COMPUTE_DTYPES), model.compute_dtype))
  model_spec.anchor_layers(model)  # raises for an architecture / image size / anchor mismatch


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


def _as_flag(name, value):
  name = ssd_flags.flag_name(name)
  if isinstance(value, bool):
    return '--%s%s' % ('' if value else 'no', name)
  if isinstance(value, tuple):
    value = ','.join(str(v) for v in value)
  return '--%s=%s' % (name, value)


def _log_start(ssd_config, model_dir):
  latest = tf.train.latest_checkpoint(model_dir)
  if latest:
    logging.info('Resuming from %s (step %s of %d).', latest, latest.rsplit('-', 1)[-1],
                 ssd_config.train.max_number_of_steps)
  elif ssd_config.train.checkpoint_path:
    logging.info('Fresh start: backbone from %s, the rest initialised randomly.',
                 ssd_config.train.checkpoint_path)
  else:
    logging.info('Fresh start from random initialisation (no --checkpoint_path).')


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
  validate(ssd_config)
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
  estimator = tf.estimator.Estimator(
      model_fn=model_fn_lib.make_model_fn(runtime_config),
      config=run_config_lib.make_run_config(model_dir, ssd_config.train, strategy))
  max_steps = ssd_config.train.max_number_of_steps
  try:
    if evaluate_during_training or run_config_lib.cluster_spec_from_env():
      if eval_input_fn is None:
        raise ValueError('train_and_evaluate needs evaluation data: give --val_file_pattern.')
      tf.estimator.train_and_evaluate(
          estimator, tf.estimator.TrainSpec(train_input_fn, max_steps=max_steps),
          tf.estimator.EvalSpec(eval_input_fn, steps=None, start_delay_secs=0,
                                throttle_secs=throttle_secs))
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
