"""Evaluation driver used by eval_ssd.py: runs the Estimator over the val shards, writes the
devkit result files and returns the VOC metric (the code of voc_eval.py) per class.

The model's settings come from <model_dir>/ssd_config.json (written by training), so the
model directory alone says which network, classes, image size and data format to build.
TensorBoard gets mAP and AP/<class> in <model_dir>/eval[_<name>].
"""

import os

import tensorflow as tf

from dataset import input_fn as input_lib
from net import detection_eval
from net import model_fn as model_fn_lib
from utility import checkpoint as checkpoint_lib
from utility import voc_metric


def latest_checkpoint(model_dir, checkpoint_path=None):
  """checkpoint_path if given, else the newest checkpoint of model_dir.

  Raises:
    ValueError: naming model_dir when it holds no checkpoint.
  """
  if checkpoint_path:
    return checkpoint_lib.resolve_checkpoint_path(checkpoint_path)
  path = tf.train.latest_checkpoint(model_dir)
  if not path:
    raise ValueError('%s holds no checkpoint: train a model into it with train_ssd.py first '
                     '(or pass --checkpoint_path).' % model_dir)
  return path


def evaluate(ssd_config, model_dir, file_pattern, batch_size=8, det_dir=None, metric='voc07',
             checkpoint_path=None, name=None):
  """Evaluates one checkpoint on the shards matching file_pattern.

  Returns:
    (summary {'mAP', 'ap', 'metric'}, per-class results of voc_metric.evaluate_classes,
     the checkpoint path evaluated, the global step).
  """
  path = latest_checkpoint(model_dir, checkpoint_path)
  input_lib.list_shards(file_pattern)  # one sentence when nothing matches
  accumulator = detection_eval.VocDetectionAccumulator(
      ssd_config.model.class_names, metric=metric, det_dir=det_dir)
  estimator = tf.estimator.Estimator(
      model_fn=model_fn_lib.make_model_fn(ssd_config, voc_accumulator=accumulator),
      model_dir=model_dir)
  metrics = estimator.evaluate(input_lib.make_eval_input_fn(file_pattern, ssd_config, batch_size),
                               checkpoint_path=path, name=name)
  return accumulator.last_summary, accumulator.last_results, path, int(metrics['global_step'])


def format_report(summary, results):
  return '\n'.join(voc_metric.format_table(results, summary))


def default_det_dir(model_dir):
  return os.path.join(model_dir, 'detections')
