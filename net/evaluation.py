"""Evaluation driver used by eval_ssd.py: runs the Estimator over the val shards with the
evaluator the settings name (net/detection_eval.py; VOC: the code of voc_eval.py, devkit result
files) and returns it.

The model's settings come from <model_dir>/ssd_config.json (written by training), so the
model directory alone says which network, classes, image size and data format to build.
TensorBoard gets mAP and AP/<class> in <model_dir>/eval[_<name>], and beside them the
per-class PR curves and the first evaluation images with their detections
(net/eval_summaries.py).
"""

import numbers
import os

import tensorflow as tf

from net import detection_eval
from net import eval_summaries
from net import kernel_support
from net import model_fn as model_fn_lib
from net import model_spec
from utility import checkpoint as checkpoint_lib
from utility import progress as progress_lib


def evaluate(ssd_config, model_dir, eval_input_fn, det_dir=None, metric='',
             checkpoint_path=None, name=None, fallback_to_nhwc=True, hooks=(),
             eval_images=eval_summaries.DEFAULT_EVAL_IMAGES):
  """Evaluates one checkpoint on the examples of eval_input_fn (dataset/input_fn.py's eval
  input, built by the caller so net/ does not depend on the data layer).

  The compute dtype and layout are chosen for this machine (net/kernel_support.py): 'auto'
  resolves here, and a layout trained elsewhere that has no kernels here runs in NHWC instead
  (the weights are the same) unless fallback_to_nhwc is False (the user asked for it).

  Args:
    metric: a key of net.detection_eval.EVALUATORS; '' = postprocess.eval_metric.
    hooks: SessionRunHooks of the evaluation run (e.g. net.hooks.EvaluationProgressHook).
    eval_images: how many of the first evaluation images TensorBoard shows with their
      detections beside the ground truth (net/eval_summaries.py); 0 = none.

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
      model_fn=model_fn_lib.make_model_fn(ssd_config, evaluator=evaluator,
                                          eval_images=eval_images),
      model_dir=model_dir)
  metrics = estimator.evaluate(eval_input_fn, checkpoint_path=path, name=name,
                               hooks=list(hooks))
  return evaluator, path, int(metrics['global_step'])


def default_det_dir(model_dir):
  return os.path.join(model_dir, 'detections')


def summary_paragraph(evaluator, checkpoint_path, step, progress):
  """One paragraph closing an evaluation: what was evaluated, how fast, the headline number.

  progress: the utility.progress.Progress of the run (net.hooks.EvaluationProgressHook's).
  """
  summary = evaluator.summary() or {}
  headline = next(('%s %.4f' % (key, summary[key]) for key in ('mAP', 'AP')
                   if isinstance(summary.get(key), numbers.Real)), 'no AP (see above)')
  return ('Evaluated %d images from %s (step %d) in %s, %.1f images/s: %s.'
          % (progress.done, checkpoint_path, step,
             progress_lib.format_duration(progress.elapsed), progress.rate(), headline))

