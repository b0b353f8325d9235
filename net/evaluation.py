"""Evaluation driver used by eval_ssd.py: runs the Estimator over the val shards, writes the
devkit result files and returns the VOC metric (the code of voc_eval.py) per class.

The model's settings come from <model_dir>/ssd_config.json (written by training), so the
model directory alone says which network, classes, image size and data format to build.
TensorBoard gets mAP and AP/<class> in <model_dir>/eval[_<name>].
"""

import os

import tensorflow as tf

from net import detection_eval
from net import kernel_support
from net import model_fn as model_fn_lib
from utility import checkpoint as checkpoint_lib
from utility import voc_metric


def evaluate(ssd_config, model_dir, eval_input_fn, det_dir=None, metric='voc07',
             checkpoint_path=None, name=None, fallback_to_nhwc=True):
  """Evaluates one checkpoint on the examples of eval_input_fn (dataset/input_fn.py's eval
  input, built by the caller so net/ does not depend on the data layer).

  The compute dtype and layout are chosen for this machine (net/kernel_support.py): 'auto'
  resolves here, and a layout trained elsewhere that has no kernels here runs in NHWC instead
  (the weights are the same) unless fallback_to_nhwc is False (the user asked for it).

  Returns:
    (summary {'mAP', 'ap', 'metric'}, per-class results of voc_metric.evaluate_classes,
     the checkpoint path evaluated, the global step).
  """
  path = checkpoint_lib.latest_checkpoint(model_dir, checkpoint_path)
  ssd_config = kernel_support.resolve_and_log(ssd_config, training=False,
                                              fallback_to_nhwc=fallback_to_nhwc)
  accumulator = detection_eval.VocDetectionAccumulator(
      ssd_config.model.class_names, metric=metric, det_dir=det_dir)
  estimator = tf.estimator.Estimator(
      model_fn=model_fn_lib.make_model_fn(ssd_config, voc_accumulator=accumulator),
      model_dir=model_dir)
  metrics = estimator.evaluate(eval_input_fn, checkpoint_path=path, name=name)
  return accumulator.last_summary, accumulator.last_results, path, int(metrics['global_step'])


def format_report(summary, results):
  return '\n'.join(voc_metric.format_table(results, summary))


def default_det_dir(model_dir):
  return os.path.join(model_dir, 'detections')
