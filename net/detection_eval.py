"""VOC mAP as Estimator eval metrics: detections accumulate in Python (tf.numpy_function), AP is
computed by utility/voc_metric.py (the same code as voc_eval.py) when the evaluation ends.

Ground truth comes from the eval records (normalized boxes, difficult flags, original image
size) and is mapped back to 1-based VOC pixels with the exact inverse of the converter's
mapping (utility.boxes.normalized_to_voc_pixels), as are the detections, so a perfect detector
scores AP 1.0. Optionally the devkit result files (comp4_det_test_<class>.txt) are written too.
"""

import collections
import os

import numpy as np
import tensorflow as tf

from utility import boxes as box_lib
from utility import voc_metric

tf1 = tf.compat.v1

_Object = collections.namedtuple('_Object', 'name xmin ymin xmax ymax difficult')
_Annotation = collections.namedtuple('_Annotation', 'objects')


def image_id_from_filename(filename):
  """b'000005.jpg' -> '000005' (the devkit's image id)."""
  if isinstance(filename, bytes):
    filename = filename.decode('utf-8')
  return os.path.splitext(os.path.basename(filename))[0]


class VocDetectionAccumulator:
  """Collects per-image detections and ground truth; computes the VOC metric at the end."""

  def __init__(self, class_names, metric='voc07', det_dir=None):
    self.class_names = tuple(class_names)
    self.metric = metric
    self.det_dir = det_dir
    self.reset()

  def reset(self):
    self._gt = {}
    self._rows = collections.defaultdict(list)  # class -> [(id, score, x1, y1, x2, y2)]

  def update(self, filenames, heights, widths, det_boxes, det_scores, det_classes, num_det,
             gt_boxes, gt_labels, gt_difficult, num_gt):
    """Adds a batch (numpy arrays; boxes normalized [ymin, xmin, ymax, xmax])."""
    for i, filename in enumerate(filenames):
      image_id = image_id_from_filename(filename)
      n_gt = int(num_gt[i])
      gt_pixels = box_lib.normalized_to_voc_pixels(gt_boxes[i, :n_gt], heights[i], widths[i])
      self._gt[image_id] = _Annotation(tuple(
          _Object(self.class_names[int(label) - 1], *box, difficult=int(difficult))
          for box, label, difficult in zip(gt_pixels, gt_labels[i, :n_gt],
                                           gt_difficult[i, :n_gt])))
      n_det = int(num_det[i])
      det_pixels = box_lib.normalized_to_voc_pixels(det_boxes[i, :n_det], heights[i], widths[i])
      for box, score, label in zip(det_pixels, det_scores[i, :n_det], det_classes[i, :n_det]):
        self._rows[self.class_names[int(label) - 1]].append((image_id, float(score), *box))

  def compute(self):
    """Returns float32 [1 + num_classes]: mAP, then AP per class (NaN for n/a classes)."""
    detections = {name: voc_metric.make_detections(rows) for name, rows in self._rows.items()}
    if self.det_dir:
      # 0.001 px: at the writers' usual 0.1 px a box near IoU 0.5 can flip between TP and FP,
      # and voc_eval.py re-scored the demo's files 0.7722 against 0.7701 here; at 0.001 px the
      # two agree.
      voc_metric.write_detections(self.det_dir, detections, self.class_names, box_decimals=3)
    results = voc_metric.evaluate_classes(self._gt, detections, self.class_names, self.metric)
    self.last_results = results
    try:
      summary = voc_metric.summarize(results, self.metric)
    except ValueError:  # no class has ground truth in what was evaluated
      summary = {'mAP': float('nan'), 'ap': {name: None for name in self.class_names}}
    self.last_summary = summary
    values = [summary['mAP']] + [np.nan if summary['ap'][n] is None else summary['ap'][n]
                                 for n in self.class_names]
    return np.array(values, np.float32)


def voc_metric_ops(accumulator, features, labels, detections):
  """Estimator eval_metric_ops: 'mAP' and 'AP/<class>' backed by the accumulator.

  Args:
    accumulator: VocDetectionAccumulator.
    features: dict with 'filename' string [batch], 'height', 'width' int [batch] (original
      image size).
    labels: dict with 'boxes' float32 [batch, max_gt, 4], 'labels' int [batch, max_gt],
      'difficult' int [batch, max_gt], 'num_boxes' int [batch] (the unaugmented ground truth).
    detections: dict from utility.nms.batch_multiclass_nms.

  Returns:
    {name: (value_tensor, update_op)}.
  """
  update_op = tf1.numpy_function(
      lambda *args: accumulator.update(*args) or np.int64(0),
      [features['filename'], features['height'], features['width'], detections['boxes'],
       detections['scores'], detections['classes'], detections['num_detections'],
       labels['boxes'], labels['labels'], labels['difficult'], labels['num_boxes']],
      tf.int64, name='voc_metric_update')
  values = tf1.numpy_function(accumulator.compute, [], tf.float32, name='voc_metric_compute')
  ops = {'mAP': (values[0], update_op)}
  for index, name in enumerate(accumulator.class_names):
    ops['AP/%s' % name] = (values[index + 1], update_op)
  return ops
