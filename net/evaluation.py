"""Evaluation driver used by eval_ssd.py: runs the Estimator over the val shards with the
evaluator the settings name (net/detection_eval.py; VOC: the code of voc_eval.py, devkit result
files) and returns it.

The model's settings come from <model_dir>/ssd_config.json (written by training), so the
model directory alone says which network, classes, image size and data format to build.
TensorBoard gets mAP and AP/<class> in <model_dir>/eval[_<name>].
"""

import os

import tensorflow as tf

from net import detection_eval
from net import kernel_support
from net import model_fn as model_fn_lib
from net import model_spec
from utility import checkpoint as checkpoint_lib


def evaluate(ssd_config, model_dir, eval_input_fn, det_dir=None, metric='',
             checkpoint_path=None, name=None, fallback_to_nhwc=True):
  """Evaluates one checkpoint on the examples of eval_input_fn (dataset/input_fn.py's eval
  input, built by the caller so net/ does not depend on the data layer).

  The compute dtype and layout are chosen for this machine (net/kernel_support.py): 'auto'
  resolves here, and a layout trained elsewhere that has no kernels here runs in NHWC instead
  (the weights are the same) unless fallback_to_nhwc is False (the user asked for it).

  Args:
    metric: a key of net.detection_eval.EVALUATORS; '' = postprocess.eval_metric.

  Returns:
    (the evaluator after the run: its report(), summary() and compute(); the checkpoint path
     evaluated; the global step).
  """
  path = checkpoint_lib.latest_checkpoint(model_dir, checkpoint_path)
  ssd_config = kernel_support.resolve_and_log(ssd_config, training=False,
                                              fallback_to_nhwc=fallback_to_nhwc)
  evaluator = detection_eval.make(metric or ssd_config.postprocess.eval_metric,
                                  ssd_config.model.class_names, det_dir=det_dir,
                                  category_ids=model_spec.category_ids(ssd_config.model))
  estimator = tf.estimator.Estimator(
      model_fn=model_fn_lib.make_model_fn(ssd_config, evaluator=evaluator),
      model_dir=model_dir)
  metrics = estimator.evaluate(eval_input_fn, checkpoint_path=path, name=name)
  return evaluator, path, int(metrics['global_step'])


def default_det_dir(model_dir):
  return os.path.join(model_dir, 'detections')
