"""Detection evaluators and their Estimator eval metrics.

The evaluator interface (``DetectionEvaluator``): ``add_batch(batch)`` takes one batch of
detections and ground truth as numpy arrays (keys in BATCH_KEYS), ``compute()`` returns an
ordered mapping metric name -> float (its ``metric_names``, in that order), ``write_results(
directory)`` writes result files, ``report()`` a text table and ``summary()`` a JSON-able dict.
``EVALUATORS`` maps a --metric / --eval_metric name to a factory(class_names, det_dir);
``register`` adds one (a user's module or a test) without editing this file, and
``metric_ops`` turns any evaluator into Estimator eval_metric_ops: detections accumulate in
Python (tf.numpy_function) and the metric is computed when the evaluation ends.

The VOC evaluator computes AP with utility/voc_metric.py (the same code as voc_eval.py).

Ground truth comes from the eval records (normalized boxes, difficult flags, original image
size) and is mapped back to 1-based VOC pixels with the exact inverse of the converter's
mapping (utility.boxes.normalized_to_voc_pixels), as are the detections, so a perfect detector
scores AP 1.0. Optionally the devkit result files (comp4_det_test_<class>.txt) are written too.
"""

import collections
import json
import os

import numpy as np
import tensorflow as tf

from utility import boxes as box_lib
from utility import file_io
from utility import voc_metric

tf1 = tf.compat.v1



def image_id_from_filename(filename):
  """b'000005.jpg' -> '000005' (the devkit's image id)."""
  if isinstance(filename, bytes):
    filename = filename.decode('utf-8')
  return os.path.splitext(os.path.basename(filename))[0]


# The batch an evaluator receives (numpy; boxes normalized [ymin, xmin, ymax, xmax]):
# 'filename' [batch] bytes, 'height'/'width' [batch] original size, detections
# 'detection_boxes' [batch, max_det, 4], 'detection_scores', 'detection_classes' [batch,
# max_det], 'num_detections' [batch]; ground truth 'gt_boxes' [batch, max_gt, 4], 'gt_labels',
# 'gt_difficult' [batch, max_gt], 'num_gt' [batch]; 'source_id' [batch] bytes (the dataset's
# image id, b'' when the records have none), 'gt_crowd' [batch, max_gt] (COCO iscrowd) and
# 'gt_area' [batch, max_gt] (pixels).
BATCH_KEYS = ('filename', 'height', 'width', 'detection_boxes', 'detection_scores',
              'detection_classes', 'num_detections', 'gt_boxes', 'gt_labels', 'gt_difficult',
              'num_gt', 'source_id', 'gt_crowd', 'gt_area')


class DetectionEvaluator:
  """The interface every evaluator implements (see the module docstring)."""

  metric_names = ()

  def reset(self):
    raise NotImplementedError

  def add_batch(self, batch):
    raise NotImplementedError

  def compute(self):
    raise NotImplementedError

  def write_results(self, directory):
    raise NotImplementedError

  def report(self):
    """Text table of the results (after compute)."""
    return '\n'.join('%s %.4f' % item for item in self.compute().items())

  def summary(self):
    return dict(self.compute())

  def write_summary(self, path):
    """summary() as JSON at path, atomically."""
    file_io.atomic_write(path, json.dumps(self.summary(), indent=2) + '\n', mode='w')


class VocDetectionAccumulator(DetectionEvaluator):
  """Collects per-image detections and ground truth; computes the VOC metric at the end."""

  def __init__(self, class_names, metric='voc07', det_dir=None):
    self.class_names = tuple(class_names)
    self.metric = metric
    self.det_dir = det_dir
    self.metric_names = ('mAP',) + tuple('AP/%s' % name for name in self.class_names)
    self.reset()

  def add_batch(self, batch):
    """Adds a batch (a dict with BATCH_KEYS; a crowd object counts as difficult: ignored)."""
    difficult = batch['gt_difficult']
    if batch.get('gt_crowd') is not None:
      difficult = np.maximum(difficult, batch['gt_crowd'])
    self.update(*[difficult if key == 'gt_difficult' else batch[key]
                  for key in BATCH_KEYS[:11]])

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
      self._gt[image_id] = voc_metric.ImageGroundTruth(tuple(
          voc_metric.GroundTruthObject(self.class_names[int(label) - 1], *box,
                                       difficult=int(difficult))
          for box, label, difficult in zip(gt_pixels, gt_labels[i, :n_gt],
                                           gt_difficult[i, :n_gt])))
      n_det = int(num_det[i])
      det_pixels = box_lib.normalized_to_voc_pixels(det_boxes[i, :n_det], heights[i], widths[i])
      for box, score, label in zip(det_pixels, det_scores[i, :n_det], det_classes[i, :n_det]):
        self._rows[self.class_names[int(label) - 1]].append((image_id, float(score), *box))

  def _detections(self):
    return {name: voc_metric.make_detections(rows) for name, rows in self._rows.items()}

  def ranked_matches(self, iou_threshold=0.5):
    """Per class the detections in score order with their VOC TP/FP flags and the count of
    non-difficult GTs (utility.voc_metric.ranked_matches): the PR curves of
    net/eval_summaries.py."""
    return voc_metric.ranked_matches(self._gt, self._detections(), self.class_names,
                                     iou_threshold)

  def write_results(self, directory):
    """The devkit result files comp4_det_test_<class>.txt in directory."""
    # 0.001 px: at the writers' usual 0.1 px a box near IoU 0.5 can flip between TP and FP,
    # and voc_eval.py re-scored the demo's files 0.7722 against 0.7701 here; at 0.001 px the
    # two agree.
    voc_metric.write_detections(directory, self._detections(), self.class_names,
                                box_decimals=3)

  def compute(self):
    """OrderedDict 'mAP', then 'AP/<class>' (NaN for classes without ground truth)."""
    values = self.compute_array()
    return collections.OrderedDict(zip(self.metric_names, (float(v) for v in values)))

  def report(self):
    return '\n'.join(voc_metric.format_table(self.last_results, self.last_summary))

  def summary(self):
    return self.last_summary

  def write_summary(self, path):
    """{"mAP", "ap", "metric"} (voc_eval.py's --json_output contract)."""
    voc_metric.write_summary_json(path, self.last_summary)

  def compute_array(self):
    """Returns float32 [1 + num_classes]: mAP, then AP per class (NaN for n/a classes)."""
    detections = self._detections()
    if self.det_dir:
      self.write_results(self.det_dir)
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


EVALUATORS = {
    metric: (lambda class_names, det_dir=None, category_ids=(), metric=metric:
             VocDetectionAccumulator(class_names, metric, det_dir))
    for metric in voc_metric.METRICS  # voc07 (11-point, the paper's), area (VOC2010+)
}


def register(name, factory):
  """Adds an evaluator: factory(class_names, det_dir=None, category_ids=()) ->
  DetectionEvaluator (category_ids: the dataset id of each label, for results files)."""
  EVALUATORS[name] = factory
  return factory


def _register_coco():
  """'coco' (pycocotools' COCOeval) lives in net/coco_detection_eval.py, imported on first use
  so that VOC users do not load pycocotools."""
  def factory(class_names, det_dir=None, category_ids=()):
    from net import coco_detection_eval
    return coco_detection_eval.CocoDetectionEvaluator(class_names, det_dir, category_ids)
  register('coco', factory)


_register_coco()


def make(name, class_names, det_dir=None, category_ids=()):
  """The evaluator registered as name (--metric / --eval_metric).

  Raises:
    ValueError: for an unknown name, listing the known ones.
  """
  if name not in EVALUATORS:
    raise ValueError('Unknown evaluation metric %r: use one of %s.'
                     % (name, ', '.join(sorted(EVALUATORS))))
  return EVALUATORS[name](class_names, det_dir=det_dir, category_ids=tuple(category_ids))


def metric_ops(evaluator, features, labels, detections):
  """Estimator eval_metric_ops: one per evaluator.metric_names, backed by the evaluator.

  Args:
    evaluator: a DetectionEvaluator.
    features: dict with 'filename' string [batch], 'height', 'width' int [batch] (original
      image size).
    labels: dict with 'boxes' float32 [batch, max_gt, 4], 'labels' int [batch, max_gt],
      'difficult' int [batch, max_gt], 'num_boxes' int [batch] (the unaugmented ground truth),
      optionally 'iscrowd' int and 'area' float32 [batch, max_gt] (else 0 and the box areas);
      features optionally 'source_id' string [batch].
    detections: dict from utility.nms.batch_multiclass_nms.

  Returns:
    {name: (value_tensor, update_op)}.
  """
  crowd = labels.get('iscrowd', tf.zeros_like(labels['labels']))
  box_size = labels['boxes'][..., 2:] - labels['boxes'][..., :2]
  box_area = (box_size[..., 0] * tf.cast(features['height'][:, None], tf.float32)
              * box_size[..., 1] * tf.cast(features['width'][:, None], tf.float32))
  inputs = [features['filename'], features['height'], features['width'], detections['boxes'],
            detections['scores'], detections['classes'], detections['num_detections'],
            labels['boxes'], labels['labels'], labels['difficult'], labels['num_boxes'],
            features.get('source_id', tf.zeros_like(features['filename'])), crowd,
            labels.get('area', box_area)]

  def update(*arrays):
    evaluator.add_batch(dict(zip(BATCH_KEYS, arrays)))
    return np.int64(0)

  def compute():
    return np.array(list(evaluator.compute().values()), np.float32)

  update_op = tf1.numpy_function(update, inputs, tf.int64, name='evaluator_update')
  values = tf1.numpy_function(compute, [], tf.float32, name='evaluator_compute')
  return {name: (values[index], update_op) for index, name in enumerate(evaluator.metric_names)}
