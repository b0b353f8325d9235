"""TensorBoard at evaluation beyond the scalars: per-class precision/recall curves (TensorBoard's
PR-curve plugin) and the first few evaluation images, detections beside the ground truth.

Both reach TensorBoard through the Estimator's eval_metric_ops (``metric_ops``): a metric whose
value is a serialized Summary proto (a tf.string scalar) is written by the Estimator itself into
the evaluation's directory (<model_dir>/eval[_<name>]) at the checkpoint's global step, in the
event file that holds mAP and AP/<class>. So eval_ssd.py and train_and_evaluate get them alike,
with no writer of our own. The Estimator renames each value of such a metric '<key>/<index>', so
the tags are 'pr_curve/<class>/0' and 'eval_images/0', 'eval_images/1', ...; an empty string
writes nothing (a class without ground truth has no curve).

PR curve of a class: at each of NUM_THRESHOLDS score thresholds t = k / (NUM_THRESHOLDS - 1)
(TensorBoard's thresholds), the detections scoring >= t, matched as the VOC metric does
(utility/voc_metric.py: IoU > 0.5, each GT matched once, a detection on a difficult GT neither
TP nor FP): TP, FP, FN = non-difficult GT - TP, TN = 0 (a detector has no countable negatives);
precision = TP / (TP + FP), the VOC precision at the last detection scoring >= t, and recall =
TP / non-difficult GT. TensorBoard drops the high thresholds that keep no detection.

Images: a numpy_function keeps the first ``num_images`` images of the evaluation (the eval
input is in file order), back to RGB pixels through the backbone's convention (the network
input is normalized) and to the original aspect ratio, and draws two panels with
utility/draw.py: the detections scoring >= DRAW_SCORE_THRESHOLD (class, score) and the ground
truth (class; difficult ones too). They are PNG images in the summary.
"""

import cv2
import numpy as np
import tensorflow as tf
from tensorboard.plugins.pr_curve import summary as pr_summary

from utility import draw

tf1 = tf.compat.v1

NUM_THRESHOLDS = 201
DEFAULT_EVAL_IMAGES = 3
# The demo draws above 0.5; a lower bar shows more of what an early checkpoint finds.
DRAW_SCORE_THRESHOLD = 0.3
HEADER_HEIGHT = 20  # pixels of caption above each panel
PANEL_GAP = 4  # white pixels between the two panels
PR_CURVE_KEY = 'pr_curve/%s'
# TensorBoard keeps one description per tag (not per step): nothing here may change by step.
PR_CURVE_DESCRIPTION = ('VOC matching: IoU > 0.5, each object matched once, difficult objects '
                        'ignored; threshold = detection score; true negatives are not defined '
                        '(0).')
IMAGES_KEY = 'eval_images'


def pr_curve_counts(scores, tp, fp, num_gt, num_thresholds=NUM_THRESHOLDS):
  """Counts and rates of one class at num_thresholds score thresholds k / (num_thresholds - 1).

  Args:
    scores: float [n] detection scores in descending order.
    tp, fp: float or int 0/1 [n], the VOC flags of those detections (both 0 on a difficult GT).
    num_gt: non-difficult ground-truth objects of the class.
    num_thresholds: int >= 2.

  Returns:
    dict of float64 [num_thresholds] arrays 'tp', 'fp', 'tn', 'fn', 'precision', 'recall' and
    'thresholds'; threshold k counts the detections with score >= k / (num_thresholds - 1).
    Precision is 0 where no detection is counted (as the VOC metric's guard), recall 0 for a
    class without ground truth.
  """
  scores = np.asarray(scores, np.float64)
  # k / (n - 1), correctly rounded (np.linspace's k * step may miss a score of exactly k / 200).
  thresholds = np.arange(num_thresholds) / (num_thresholds - 1.0)
  counted = np.searchsorted(-scores, -thresholds, side='right')  # how many score >= t
  tp_counts = np.concatenate([[0.0], np.cumsum(tp, dtype=np.float64)])[counted]
  fp_counts = np.concatenate([[0.0], np.cumsum(fp, dtype=np.float64)])[counted]
  precision = tp_counts / np.maximum(tp_counts + fp_counts, np.finfo(np.float64).eps)
  recall = tp_counts / num_gt if num_gt else np.zeros(num_thresholds)
  return dict(tp=tp_counts, fp=fp_counts, tn=np.zeros(num_thresholds), fn=num_gt - tp_counts,
              precision=precision, recall=recall, thresholds=thresholds)


def pr_curve_summary(class_name, ranked, num_thresholds=NUM_THRESHOLDS):
  """A Summary with one PR-curve value (tag '<class>/pr_curves') for ranked, one entry of
  utility.voc_metric.ranked_matches; None for a class without non-difficult ground truth."""
  if not ranked['num_gt']:
    return None
  counts = pr_curve_counts(ranked['scores'], ranked['tp'], ranked['fp'], ranked['num_gt'],
                           num_thresholds)
  return pr_summary.raw_data_pb(
      class_name, counts['tp'], counts['fp'], counts['tn'], counts['fn'], counts['precision'],
      counts['recall'], num_thresholds=num_thresholds, display_name=class_name,
      description=PR_CURVE_DESCRIPTION)


def serialized_pr_curves(evaluator, class_names, num_thresholds=NUM_THRESHOLDS):
  """object [num_classes] array of serialized Summary protos, b'' for a class without GT."""
  ranked = evaluator.ranked_matches()
  summaries = [pr_curve_summary(name, ranked[name], num_thresholds) for name in class_names]
  return np.array([b'' if s is None else s.SerializeToString() for s in summaries], object)


def _caption(panel, text):
  """panel (uint8 [h, w, 3]) under a white HEADER_HEIGHT strip holding text."""
  header = np.full([HEADER_HEIGHT, panel.shape[1], 3], 255, np.uint8)
  cv2.putText(header, text, (3, HEADER_HEIGHT - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1,
              cv2.LINE_AA)
  return np.concatenate([header, panel], axis=0)


def side_by_side(image_rgb, height, width, detections, ground_truth, class_names,
                 score_threshold=DRAW_SCORE_THRESHOLD):
  """Detections beside ground truth on one evaluation image.

  Args:
    image_rgb: uint8 [size, size, 3] RGB, the network input back in pixels.
    height, width: the original image size; the panels get its aspect ratio at the network's
      height: size x round(size * width / height).
    detections: (boxes float [n, 4] normalized [ymin, xmin, ymax, xmax], scores float [n],
      classes int [n] 1-based), the valid rows only.
    ground_truth: (boxes float [g, 4] normalized, labels int [g]), the valid rows only.
    class_names: label 1 first.
    score_threshold: detections scoring lower are not drawn.

  Returns:
    uint8 RGB [HEADER_HEIGHT + size, 2 * panel width + PANEL_GAP, 3].
  """
  size = image_rgb.shape[0]
  panel_width = max(1, int(round(size * float(width) / float(height))))
  image = cv2.resize(image_rgb, (panel_width, size), interpolation=cv2.INTER_LINEAR)
  boxes, scores, classes = detections
  shown = int(np.count_nonzero(np.asarray(scores) >= score_threshold))
  predicted = draw.draw_detections(image, boxes, classes, scores, class_names=class_names,
                                   channel_order='rgb', score_threshold=score_threshold)
  truth = draw.draw_boxes_normalized(image, ground_truth[0], ground_truth[1],
                                     class_names=class_names, channel_order='rgb')
  gap = np.full([HEADER_HEIGHT + size, PANEL_GAP, 3], 255, np.uint8)
  return np.concatenate([
      _caption(predicted, '%d detections >= %.2f' % (shown, score_threshold)), gap,
      _caption(truth, '%d ground truth' % len(ground_truth[1]))], axis=1)


def image_summary(images_rgb, tag_prefix=IMAGES_KEY):
  """A Summary of PNG images (uint8 RGB [h, w, 3] each) tagged '<tag_prefix>/<index>'."""
  summary = tf1.Summary()
  for index, image in enumerate(images_rgb):
    ok, encoded = cv2.imencode('.png', cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
      raise ValueError('Could not encode evaluation image %d as PNG.' % index)
    summary.value.add(tag='%s/%d' % (tag_prefix, index), image=tf1.Summary.Image(
        height=image.shape[0], width=image.shape[1], colorspace=3,
        encoded_image_string=encoded.tobytes()))
  return summary


class EvalImageCollector:
  """Keeps the first num_images evaluation images, drawn by side_by_side (Python side of the
  numpy_function in metric_ops)."""

  def __init__(self, num_images, convention, class_names,
               score_threshold=DRAW_SCORE_THRESHOLD):
    self.num_images = num_images
    self.convention = convention
    self.class_names = tuple(class_names)
    self.score_threshold = score_threshold
    self.images = []

  def add_batch(self, images, heights, widths, det_boxes, det_scores, det_classes, num_det,
                gt_boxes, gt_labels, num_gt):
    """numpy arrays as in metric_ops (images: the network input); returns int64 0."""
    for i in range(min(len(images), self.num_images - len(self.images))):
      pixels = np.clip(np.round(self.convention.to_rgb_pixels_numpy(images[i])), 0, 255)
      n, g = int(num_det[i]), int(num_gt[i])
      self.images.append(side_by_side(
          pixels.astype(np.uint8), heights[i], widths[i],
          (det_boxes[i, :n], det_scores[i, :n], det_classes[i, :n]),
          (gt_boxes[i, :g], gt_labels[i, :g]), self.class_names, self.score_threshold))
    return np.int64(0)

  def serialized(self):
    """The Summary of the images kept, serialized (a 0-d object array for numpy_function)."""
    return np.array(image_summary(self.images).SerializeToString(), object)


def metric_ops(evaluator, features, labels, detections, class_names, convention,
               num_images=DEFAULT_EVAL_IMAGES):
  """Estimator eval_metric_ops whose values are serialized Summary protos (module docstring).

  Args:
    evaluator: the evaluation's DetectionEvaluator; PR curves only if it has ranked_matches()
      (the VOC evaluators).
    features: 'image' float32 [batch, size, size, 3] network input, 'height', 'width' int
      [batch] original size.
    labels: 'boxes' float32 [batch, max_gt, 4] normalized, 'labels' int [batch, max_gt],
      'num_boxes' int [batch].
    detections: dict from utility.nms.batch_multiclass_nms.
    class_names: label 1 first.
    convention: the backbone's utility.image_convention.ImageConvention.
    num_images: evaluation images to draw; 0 = none.

  Returns:
    {'pr_curve/<class>': (string tensor, no-op)} per class and {'eval_images': (string tensor,
    update op)}.
  """
  ops = {}
  if hasattr(evaluator, 'ranked_matches'):
    curves = tf1.numpy_function(lambda: serialized_pr_curves(evaluator, class_names), [],
                                tf.string, name='pr_curves')
    curves.set_shape([len(class_names)])
    no_update = tf.no_op()
    ops.update({PR_CURVE_KEY % name: (curves[index], no_update)
                for index, name in enumerate(class_names)})
  if num_images > 0:
    collector = EvalImageCollector(num_images, convention, class_names)
    inputs = [features['image'], features['height'], features['width'], detections['boxes'],
              detections['scores'], detections['classes'], detections['num_detections'],
              labels['boxes'], labels['labels'], labels['num_boxes']]
    update = tf1.numpy_function(collector.add_batch, inputs, tf.int64, name='eval_images_update')
    images = tf1.numpy_function(collector.serialized, [], tf.string, name='eval_images')
    ops[IMAGES_KEY] = (tf.reshape(images, []), update)
  return ops
