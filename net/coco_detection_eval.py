"""The COCO evaluator ('coco' in net.detection_eval.EVALUATORS): COCOeval over the eval records.

The ground truth is built from the records themselves (boxes, the stored area, iscrowd, the
original image size and the dataset's image id, ``image/source_id``), so evaluation needs no
annotation file and works on any converted dataset. For COCO-converted records that is the
instances file again: boxes to float32 precision, areas exactly, crowd regions as crowd. On a
VOC-converted dataset a difficult object becomes a crowd region (COCOeval ignores it, as the
VOC protocol does) and areas are box areas.

Detections and ground truth are in pixels of the original image, continuous coordinates
(normalized box x original width / height, rounded to 0.001 px: the records hold float32),
and carry the dataset's category ids
(``--category_ids``, from the converter's summary), so ``write_results`` gives a results file
that pycocotools' ``loadRes`` reads against the official annotations unchanged.
"""

import collections
import json
import os

import numpy as np

from net import detection_eval
from utility import coco_metric
from utility import file_io
from utility import labels as label_utils

RESULTS_FILENAME = 'coco_results.json'


def _pixels(boxes, height, width):
  """Normalized [ymin, xmin, ymax, xmax] -> pixel [x1, y1, x2, y2] (float64)."""
  boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
  return np.stack([boxes[:, 1] * width, boxes[:, 0] * height,
                   boxes[:, 3] * width, boxes[:, 2] * height], axis=1)


class CocoDetectionEvaluator(detection_eval.DetectionEvaluator):
  """Collects detections and ground truth per image; runs COCOeval in compute()."""

  metric_names = coco_metric.STAT_KEYS

  def __init__(self, class_names, det_dir=None, category_ids=()):
    self.class_names = tuple(class_names)
    self.category_ids = tuple(category_ids) or label_utils.default_category_ids(class_names)
    label_utils.check_category_ids(self.category_ids, self.class_names)
    self.det_dir = det_dir
    self.last_stats = None
    self.reset()

  def reset(self):
    self._images = collections.OrderedDict()   # image id -> (image entry, annotations, results)
    self._ids_by_name = {}

  def _image_id(self, source_id, filename):
    """The dataset's integer id; records without one get 1, 2, ... by file name."""
    text = source_id.decode('utf-8') if isinstance(source_id, bytes) else str(source_id or '')
    if text.strip().lstrip('-').isdigit():
      return int(text)
    return self._ids_by_name.setdefault(filename, len(self._ids_by_name) + 1)

  def add_batch(self, batch):
    for i, filename in enumerate(batch['filename']):
      height, width = float(batch['height'][i]), float(batch['width'][i])
      source_id = batch['source_id'][i] if batch.get('source_id') is not None else b''
      name = filename.decode('utf-8') if isinstance(filename, bytes) else str(filename)
      image_id = self._image_id(source_id, name)
      n_gt = int(batch['num_gt'][i])
      crowd = batch.get('gt_crowd')
      ignored = np.maximum(batch['gt_difficult'][i, :n_gt],
                           crowd[i, :n_gt] if crowd is not None else 0)
      gt_boxes = _pixels(batch['gt_boxes'][i, :n_gt], height, width)
      areas = batch.get('gt_area')
      areas = (areas[i, :n_gt] if areas is not None
               else (gt_boxes[:, 2] - gt_boxes[:, 0]) * (gt_boxes[:, 3] - gt_boxes[:, 1]))
      annotations = [
          {'image_id': image_id, 'category_id': self.category_ids[int(label) - 1],
           'bbox': [round(v, 3) for v in (x1, y1, x2 - x1, y2 - y1)], 'area': float(area),
           'iscrowd': int(bool(flag))}
          for (x1, y1, x2, y2), label, area, flag in zip(
              gt_boxes.tolist(), batch['gt_labels'][i, :n_gt], areas, ignored)]
      n_det = int(batch['num_detections'][i])
      results = coco_metric.result_rows(
          image_id, _pixels(batch['detection_boxes'][i, :n_det], height, width),
          batch['detection_scores'][i, :n_det],
          [self.category_ids[int(c) - 1] for c in batch['detection_classes'][i, :n_det]])
      entry = {'id': image_id, 'file_name': name, 'height': int(height), 'width': int(width)}
      self._images[image_id] = (entry, annotations, results)

  def ground_truth(self):
    """The collected ground truth as an instances-file dict (annotation ids 1, 2, ...)."""
    annotations = []
    for _, image_annotations, _ in self._images.values():
      for annotation in image_annotations:
        annotations.append(dict(annotation, id=len(annotations) + 1))
    return {'images': [entry for entry, _, _ in self._images.values()],
            'annotations': annotations,
            'categories': [{'id': category_id, 'name': name} for category_id, name in
                           zip(self.category_ids, self.class_names)]}

  def results(self):
    return [row for _, _, rows in self._images.values() for row in rows]

  def write_results(self, directory):
    """<directory>/coco_results.json, COCO's results format."""
    os.makedirs(directory, exist_ok=True)
    file_io.atomic_write(os.path.join(directory, RESULTS_FILENAME),
                         json.dumps(self.results()) + '\n', mode='w')

  def compute(self):
    if self.det_dir:
      self.write_results(self.det_dir)
    ground_truth = coco_metric.coco_from_dataset(self.ground_truth())
    self.last_stats, _ = coco_metric.evaluate(ground_truth, self.results())
    return self.last_stats

  def report(self):
    stats = self.last_stats if self.last_stats is not None else self.compute()
    return '\n'.join(coco_metric.format_table(stats))

  def summary(self):
    stats = self.last_stats if self.last_stats is not None else self.compute()
    return {key: stats[key] for key in coco_metric.STAT_KEYS}

  def write_summary(self, path):
    coco_metric.write_summary_json(path, self.summary())
