"""COCO box AP with pycocotools' COCOeval (the reference implementation), without TensorFlow.

Used by coco_eval.py (files in, numbers out) and by the in-graph evaluator of
``eval_ssd.py --metric=coco`` (net/coco_detection_eval.py). The twelve numbers are COCOeval's
``stats`` in its order, under the keys of ``STAT_KEYS``:
AP (IoU .50:.95), AP50, AP75, APs / APm / APl (area < 32^2, 32^2..96^2, > 96^2 pixels), then
AR with 1 / 10 / 100 detections per image and ARs / ARm / ARl at 100. A value COCOeval cannot
compute (no ground truth in that area range) is -1, as pycocotools reports it.

Results are COCO's results format: [{"image_id", "category_id", "bbox": [x, y, w, h],
"score"}] in pixels of the original image, continuous coordinates from the top-left corner.
"""

import collections
import contextlib
import io
import json
import os

import numpy as np

from utility import file_io

STAT_KEYS = ('AP', 'AP50', 'AP75', 'APs', 'APm', 'APl',
             'AR1', 'AR10', 'AR100', 'ARs', 'ARm', 'ARl')
STAT_DESCRIPTIONS = (
    'Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]',
    'Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ]',
    'Average Precision  (AP) @[ IoU=0.75      | area=   all | maxDets=100 ]',
    'Average Precision  (AP) @[ IoU=0.50:0.95 | area= small | maxDets=100 ]',
    'Average Precision  (AP) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ]',
    'Average Precision  (AP) @[ IoU=0.50:0.95 | area= large | maxDets=100 ]',
    'Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ]',
    'Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets= 10 ]',
    'Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]',
    'Average Recall     (AR) @[ IoU=0.50:0.95 | area= small | maxDets=100 ]',
    'Average Recall     (AR) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ]',
    'Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets=100 ]',
)


class CocoMetricError(ValueError):
  """Inputs COCOeval cannot use (unreadable file, results for unknown images or categories)."""


def _quiet(fn, *args):
  """fn(*args) with pycocotools' progress prints captured; returns (value, captured text)."""
  captured = io.StringIO()
  with contextlib.redirect_stdout(captured):
    value = fn(*args)
  return value, captured.getvalue()


def coco_from_dataset(dataset):
  """A pycocotools COCO object of a ground-truth dict (the instances-file layout)."""
  from pycocotools import coco as coco_api
  ground_truth = coco_api.COCO()
  ground_truth.dataset = dataset
  _quiet(ground_truth.createIndex)
  return ground_truth


def load_ground_truth(path):
  """The instances file at path as a pycocotools COCO object.

  Raises:
    CocoMetricError: naming the file when it is missing or not a COCO instances file.
  """
  dataset = read_json(path, 'annotations')
  if not isinstance(dataset, dict) or not isinstance(dataset.get('images'), list) or \
      not isinstance(dataset.get('categories'), list):
    raise CocoMetricError('%s is not a COCO instances file (it needs "images", "annotations" '
                          'and "categories").' % path)
  dataset.setdefault('annotations', [])
  return coco_from_dataset(dataset)


def read_json(path, what):
  if not os.path.isfile(path):
    raise CocoMetricError('The %s file %s does not exist.' % (what, path))
  try:
    with open(path, encoding='utf-8') as f:
      return json.load(f)
  except ValueError as e:
    raise CocoMetricError('%s is not valid JSON: %s' % (path, e)) from None


def check_results(ground_truth, results, source='the results'):
  """Raises CocoMetricError naming source when a result's image or category is unknown."""
  image_ids, category_ids = set(ground_truth.getImgIds()), set(ground_truth.getCatIds())
  for result in results:
    if not isinstance(result, dict) or not {'image_id', 'category_id', 'bbox', 'score'} <= set(
        result):
      raise CocoMetricError('%s: %r is not a COCO result {"image_id", "category_id", "bbox", '
                            '"score"}.' % (source, result))
    if result['image_id'] not in image_ids:
      raise CocoMetricError('%s: image_id %r is not in the ground truth.'
                            % (source, result['image_id']))
    if result['category_id'] not in category_ids:
      raise CocoMetricError('%s: category_id %r is not a ground-truth category.'
                            % (source, result['category_id']))


def evaluate(ground_truth, results, source='the results'):
  """COCOeval (bbox) of results against ground_truth.

  Args:
    ground_truth: a pycocotools COCO object (load_ground_truth / coco_from_dataset).
    results: list of result dicts (module docstring), possibly empty.

  Returns:
    (OrderedDict STAT_KEYS -> float, the COCOeval object or None when there is no result).
    With no result at all every AP and AR is 0 (nothing was found), or -1 where the ground
    truth has nothing to find.
  """
  from pycocotools import cocoeval
  check_results(ground_truth, results, source)
  if not results:
    has_gt = any(not a.get('iscrowd', 0) for a in ground_truth.dataset['annotations'])
    return collections.OrderedDict((k, 0.0 if has_gt else -1.0) for k in STAT_KEYS), None
  detections, _ = _quiet(ground_truth.loadRes, [dict(r) for r in results])
  evaluator = cocoeval.COCOeval(ground_truth, detections, 'bbox')
  for step in (evaluator.evaluate, evaluator.accumulate, evaluator.summarize):
    _quiet(step)
  stats = collections.OrderedDict(zip(STAT_KEYS, (float(v) for v in evaluator.stats)))
  return stats, evaluator


def format_table(stats):
  """COCOeval's twelve lines with their values, as pycocotools prints them."""
  return [' %s = %.3f   %s' % (description, stats[key], key)
          for description, key in zip(STAT_DESCRIPTIONS, STAT_KEYS)]


def write_summary_json(path, stats):
  """The twelve numbers as {"AP": ..., ..., "ARl": ...} at path, atomically."""
  file_io.atomic_write(path, json.dumps({k: stats[k] for k in STAT_KEYS}, indent=2) + '\n',
                       mode='w')


def result_rows(image_id, boxes_xyxy, scores, category_ids):
  """COCO result dicts of one image: boxes [n, 4] as pixel x1, y1, x2, y2."""
  rows = []
  for box, score, category_id in zip(np.asarray(boxes_xyxy, np.float64), scores, category_ids):
    x1, y1, x2, y2 = (float(v) for v in box)
    rows.append({'image_id': image_id, 'category_id': int(category_id),
                 'bbox': [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)],
                 'score': round(float(score), 6)})
  return rows
