r"""Times the numpy VOC evaluator on a synthetic VOC07-test-sized split.

    python bench/voc_eval_bench.py [--num_images=4952] [--num_classes=20] \
        [--detections_per_image=200] [--metric=voc07] [--with_io]

Ground truth and detections are synthesised in memory from a fixed seed: ~3 objects per image
(20% difficult), and per image ``detections_per_image`` detections (the reference cap of 200):
three jittered copies of each object with high scores, the rest random boxes of random classes
with low scores. ``time_evaluator`` is importable (bench/inference.py reports its number).
Prints a table, then as the last line one JSON object with ``voc_eval_seconds``.
"""

import json
import os
import sys
import tempfile
import time

if not __package__:
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np
from absl import app
from absl import flags

from dataset import voc
from utility import hardware
from utility import voc_metric

WIDTH, HEIGHT = 500, 375


def _random_boxes(rng, count):
  """[count, 4] 1-based pixel boxes [xmin, ymin, xmax, ymax] inside a 500 x 375 image."""
  size = rng.uniform(20, 250, [count, 2])
  corner = 1.0 + rng.uniform(0, 1, [count, 2]) * ([WIDTH, HEIGHT] - size)
  return np.round(np.concatenate([corner, corner + size], axis=1))


def synthesize(num_images, num_classes, detections_per_image, seed=0):
  """Deterministic (gt_annotations, detections_by_class, class_names)."""
  rng = np.random.RandomState(seed)
  class_names = tuple('class%02d' % c for c in range(num_classes))
  image_ids = ['%06d' % i for i in range(num_images)]
  gt_annotations, rows = {}, {name: [] for name in class_names}
  for image_id in image_ids:
    num_objects = rng.randint(1, 6)
    labels = rng.randint(num_classes, size=num_objects)
    gt_boxes = _random_boxes(rng, num_objects)
    difficult = rng.rand(num_objects) < 0.2
    gt_annotations[image_id] = voc.VocAnnotation('%s.jpg' % image_id, WIDTH, HEIGHT, tuple(
        voc.VocObject(class_names[l], *b, difficult=int(d), truncated=0)
        for l, b, d in zip(labels, gt_boxes, difficult)))
    copies = min(3 * num_objects, detections_per_image)
    det_labels = np.concatenate([np.repeat(labels, 3)[:copies],
                                 rng.randint(num_classes, size=detections_per_image - copies)])
    det_boxes = np.concatenate([np.repeat(gt_boxes, 3, axis=0)[:copies]
                                + rng.normal(0, 8, [copies, 4]),
                                _random_boxes(rng, detections_per_image - copies)])
    det_scores = np.concatenate([rng.uniform(0.3, 1.0, copies),
                                 rng.uniform(0.01, 0.5, detections_per_image - copies)])
    for l, s, b in zip(det_labels, det_scores, det_boxes):
      rows[class_names[l]].append((image_id, s) + tuple(b))
  detections = {name: voc_metric.make_detections(r) for name, r in rows.items()}
  return gt_annotations, detections, class_names


def time_evaluator(num_images=4952, num_classes=20, detections_per_image=200, seed=0,
                   metric='voc07', with_io=False):
  """Times ``voc_metric.evaluate`` (and optionally writing + reading the result files).

  Returns:
    dict with voc_eval_seconds, mAP, num_detections, num_gt_objects, and, with_io,
    result_files_write_read_seconds.
  """
  gt_annotations, detections, class_names = synthesize(num_images, num_classes,
                                                       detections_per_image, seed)
  start = time.perf_counter()
  summary = voc_metric.evaluate(gt_annotations, detections, class_names, metric)
  stats = {'voc_eval_seconds': time.perf_counter() - start, 'mAP': summary['mAP'],
           'num_detections': sum(len(d.scores) for d in detections.values()),
           'num_gt_objects': sum(len(a.objects) for a in gt_annotations.values())}
  if with_io:
    with tempfile.TemporaryDirectory() as det_dir:
      start = time.perf_counter()
      voc_metric.write_detections(det_dir, detections, class_names)
      voc_metric.read_detections(det_dir, class_names)
      stats['result_files_write_read_seconds'] = time.perf_counter() - start
  return stats


FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_integer('num_images', 4952, 'Images (VOC07 test has 4,952).')
  flags.DEFINE_integer('num_classes', 20, 'Object classes.')
  flags.DEFINE_integer('detections_per_image', 200, 'Detections per image (reference cap).')
  flags.DEFINE_enum('metric', 'voc07', voc_metric.METRICS, 'AP metric.')
  flags.DEFINE_bool('with_io', False, 'Also time writing and reading the devkit files.')


def main(argv):
  del argv
  stats = time_evaluator(FLAGS.num_images, FLAGS.num_classes, FLAGS.detections_per_image,
                         metric=FLAGS.metric, with_io=FLAGS.with_io)
  print('%-34s %12s' % ('quantity', 'value'))
  print('%-34s %12d' % ('images', FLAGS.num_images))
  print('%-34s %12d' % ('classes', FLAGS.num_classes))
  print('%-34s %12d' % ('ground-truth objects', stats['num_gt_objects']))
  print('%-34s %12d' % ('detections', stats['num_detections']))
  print('%-34s %12.4f' % ('mAP (%s, synthetic)' % FLAGS.metric, stats['mAP']))
  print('%-34s %12.3f' % ('evaluate() seconds', stats['voc_eval_seconds']))
  if FLAGS.with_io:
    print('%-34s %12.3f' % ('write + read result files seconds',
                            stats['result_files_write_read_seconds']))
  machine = hardware.describe(with_tensorflow=False)
  print('machine: %s' % hardware.describe_line(machine))
  summary = {key: round(value, 4) for key, value in stats.items() if key.endswith('_seconds')}
  summary['machine'] = machine
  print(json.dumps(summary))


if __name__ == '__main__':
  define_flags()
  app.run(main)
