"""Devices and RunConfig: one device, MirroredStrategy over GPUs or CPU devices, or
MultiWorkerMirroredStrategy when TF_CONFIG describes a cluster.

The old contrib `replicate_model_fn` is gone; `MirroredStrategy` passed as
`RunConfig(train_distribute=...)` is its successor. With several replicas the global batch is
split evenly: `--batch_size` must be divisible by the number of replicas.
"""

import json
import os

import tensorflow as tf
from absl import logging

tf1 = tf.compat.v1


def cluster_spec_from_env():
  """The 'cluster' of TF_CONFIG as a dict, or None (no TF_CONFIG or a single task)."""
  tf_config = json.loads(os.environ.get('TF_CONFIG', '{}') or '{}')
  cluster = tf_config.get('cluster') or {}
  num_tasks = sum(len(tasks) for name, tasks in cluster.items() if name != 'evaluator')
  return cluster if num_tasks > 1 else None


def _local_devices(train_config):
  """Devices of this process to replicate over, or [] for plain single-device training."""
  if train_config.cpu_replicas > 1:
    return ['/cpu:%d' % i for i in range(train_config.cpu_replicas)]
  gpus = tf.config.list_physical_devices('GPU')
  wanted = len(gpus) if train_config.num_gpus < 0 else train_config.num_gpus
  if wanted > len(gpus):
    raise ValueError('--num_gpus=%d but this machine has %d visible GPU(s); lower --num_gpus '
                     '(or use --cpu_replicas to exercise replication on CPU).'
                     % (wanted, len(gpus)))
  return ['/gpu:%d' % i for i in range(wanted)] if wanted > 1 else []


def make_strategy(train_config):
  """Returns (strategy or None, number of replicas in sync)."""
  if cluster_spec_from_env():
    strategy = tf1.distribute.experimental.MultiWorkerMirroredStrategy()
    return strategy, strategy.num_replicas_in_sync
  devices = _local_devices(train_config)
  if not devices:
    return None, 1
  return tf1.distribute.MirroredStrategy(devices=devices), len(devices)


def check_batch_divisible(batch_size, num_replicas):
  if batch_size % num_replicas:
    raise ValueError('--batch_size=%d is not divisible by the %d replicas; use a multiple of %d.'
                     % (batch_size, num_replicas, num_replicas))


def make_run_config(model_dir, train_config, strategy=None):
  """tf.estimator.RunConfig with checkpoint/summary cadence from the TrainConfig."""
  session_config = tf1.ConfigProto(allow_soft_placement=True)
  if train_config.cpu_replicas > 1:
    session_config.device_count['CPU'] = train_config.cpu_replicas
  save_steps = train_config.save_checkpoints_steps or None
  return tf.estimator.RunConfig(
      model_dir=model_dir,
      tf_random_seed=train_config.tf_random_seed or None,
      save_summary_steps=train_config.save_summary_steps,
      save_checkpoints_steps=save_steps,
      save_checkpoints_secs=None if save_steps else train_config.save_checkpoints_secs,
      keep_checkpoint_max=train_config.keep_checkpoint_max,
      log_step_count_steps=max(1, train_config.log_every_n_steps) * 10,
      session_config=session_config,
      train_distribute=strategy)


def log_replication(strategy, num_replicas):
  if strategy is None:
    logging.info('Training on one device.')
  else:
    logging.info('Training with %s over %d replicas.', type(strategy).__name__, num_replicas)
