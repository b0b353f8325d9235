"""The COCO path: conversion (dataset/coco.py + convert_tfrecords --format=coco), COCOeval through
the evaluator interface (net/coco_detection_eval.py), coco_eval.py, crowd handling."""

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import tensorflow as tf

from dataset import convert_tfrecords
from dataset import input_fn
from net import coco_detection_eval
from net import detection_eval
from utility import coco_metric
from tests.test_convert_tfrecords import read_records

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Category ids with gaps, listed out of order: labels follow the sorted ids (3 cat, 7 dog,
# 12 bird -> 1, 2, 3).
CATEGORIES = [{'id': 12, 'name': 'bird'}, {'id': 3, 'name': 'cat'}, {'id': 7, 'name': 'dog'}]
SIZES = {101: (64, 48), 102: (50, 40), 103: (40, 30), 104: (32, 32), 105: (30, 20)}  # w, h


def _annotation(annotation_id, image_id, category_id, bbox, area=None, iscrowd=0):
  x, y, w, h = bbox
  return {'id': annotation_id, 'image_id': image_id, 'category_id': category_id, 'bbox': bbox,
          'area': area if area is not None else w * h, 'iscrowd': iscrowd,
          'segmentation': [[x, y, x + w, y, x + w, y + h, x, y + h]]}


def write_tiny_coco(root, with_problems=True):
  """A COCO-format set, with every kind of problem unless with_problems is False; returns
  (annotations path, images dir)."""
  images_dir = os.path.join(root, 'images')
  os.makedirs(images_dir, exist_ok=True)
  images = []
  for image_id, (width, height) in SIZES.items():
    images.append({'id': image_id, 'file_name': 'img_%d.jpg' % image_id, 'width': width,
                   'height': height})
    if image_id == 104 and with_problems:
      continue   # listed, not on disk
    pixels = np.full((height, width, 3), (image_id * 2) % 255, np.uint8)
    cv2.imwrite(os.path.join(images_dir, 'img_%d.jpg' % image_id), pixels)
  # Image 102 listed twice (a second entry with another file name).
  if with_problems:
    images.append({'id': 102, 'file_name': 'other.jpg', 'width': 10, 'height': 10})
  annotations = [
      _annotation(1, 101, 3, [4.5, 6.0, 20.0, 10.25], area=150.5),
      _annotation(2, 101, 12, [30.0, 20.0, 30.0, 25.0], iscrowd=1),
      _annotation(3, 101, 7, [10.0, 10.0, -5.0, 8.0]),           # negative width
      _annotation(4, 101, 99, [1.0, 1.0, 5.0, 5.0]),              # unknown category
      _annotation(5, 102, 7, [40.0, 30.0, 20.0, 20.0], area=90.0),  # crosses the border
      _annotation(6, 104, 3, [1.0, 1.0, 5.0, 5.0]),               # its image is missing
      _annotation(7, 555, 3, [1.0, 1.0, 5.0, 5.0]),               # unknown image id
  ]
  if not with_problems:
    annotations = [annotations[i] for i in (0, 1, 5)] + [
        _annotation(5, 102, 7, [30.0, 20.0, 15.0, 15.0], area=90.0)]
  # 103 and 105 have no annotation: negatives, kept.
  path = os.path.join(root, 'instances_tiny.json')
  with open(path, 'w') as f:
    json.dump({'images': images, 'annotations': annotations, 'categories': CATEGORIES}, f)
  return path, images_dir


def _read_records(pattern):
  """{image id: decoded dict} of the records matching pattern."""
  return {int(example['source_id']): example for example in read_records(pattern).values()}


def test_coco_conversion_round_trip_and_bad_cases(tmp_path):
  annotations, images = write_tiny_coco(str(tmp_path))
  out = str(tmp_path / 'records')
  summary = convert_tfrecords.convert_coco(annotations, images, out, split_name='val',
                                           num_shards=2, num_workers=1)
  assert summary['class_names'] == ['cat', 'dog', 'bird']
  assert summary['category_ids'] == [3, 7, 12]
  stats = summary['sets']['val']
  assert (stats['images_listed'], stats['images_written']) == (5, 4)
  assert stats['objects'] == 3 and stats['crowd'] == 1 and stats['images_without_objects'] == 2
  assert stats['objects_per_class'] == {'cat': 1, 'dog': 1, 'bird': 1}
  warnings = '\n'.join(summary['warnings'])
  assert 'image id 102 is listed twice (img_102.jpg, other.jpg); keeping the first' in warnings
  assert 'annotation 7 refers to image id 555' in warnings
  assert ('annotation 3 of image 101 (img_101.jpg) has bbox [10.0, 10.0, -5.0, 8.0] with a '
          'negative or zero width; skipped.') in warnings
  assert 'annotation 4 of image 101 (img_101.jpg) has unknown category id 99; skipped.' in warnings
  assert 'annotation 5 of image 102 (img_102.jpg) has bbox' in warnings and 'clipped' in warnings
  assert [item['image'] for item in summary['skipped']] == ['image 104 (img_104.jpg)']
  assert 'img_104.jpg (image id 104 of %s) is missing on disk' % annotations in (
      summary['skipped'][0]['reason'])
  examples = _read_records(os.path.join(out, 'val-*'))
  assert sorted(examples) == [101, 102, 103, 105]
  first = examples[101]
  assert first['filename'] == b'img_101.jpg' and (first['height'], first['width']) == (48, 64)
  # COCO [x, y, w, h] -> normalized [y / H, x / W, (y + h) / H, (x + w) / W].
  np.testing.assert_allclose(first['boxes'], [[6 / 48, 4.5 / 64, 16.25 / 48, 24.5 / 64],
                                              [20 / 48, 30 / 64, 45 / 48, 60 / 64]], rtol=1e-6)
  assert first['labels'].tolist() == [1, 3] and first['iscrowd'].tolist() == [0, 1]
  np.testing.assert_allclose(first['area'], [150.5, 750.0])
  clipped = examples[102]   # [40, 30, 20, 20] in a 50 x 40 image -> [40, 30, 10, 10]
  np.testing.assert_allclose(clipped['boxes'], [[30 / 40, 40 / 50, 1.0, 1.0]], rtol=1e-6)
  assert clipped['labels'].tolist() == [2] and clipped['area'].tolist() == [90.0]
  assert examples[103]['num_boxes'] == 0 and examples[105]['num_boxes'] == 0


def test_coco_conversion_strict_and_second_split_keeps_the_first(tmp_path):
  annotations, images = write_tiny_coco(str(tmp_path))
  out = str(tmp_path / 'records')
  with pytest.raises(convert_tfrecords.ConversionError,
                     match='--strict: .*instances_tiny.json: image id 102 is listed twice'):
    convert_tfrecords.convert_coco(annotations, images, out, strict=True, num_workers=1)
  assert not tf.io.gfile.glob(os.path.join(out, 'train-*'))
  convert_tfrecords.convert_coco(annotations, images, out, 'train', num_shards=1, num_workers=1)
  summary = convert_tfrecords.convert_coco(annotations, images, out, 'val', num_shards=1,
                                           num_workers=1)
  assert sorted(summary['sets']) == ['train', 'val']
  assert summary['sets']['train']['shards'] == ['train-00000-of-00001']


def test_coco_conversion_errors_name_the_file(tmp_path):
  with pytest.raises(ValueError, match='COCO annotation file .*nope.json not found'):
    convert_tfrecords.convert_coco(str(tmp_path / 'nope.json'), str(tmp_path), str(tmp_path))
  bad = tmp_path / 'bad.json'
  bad.write_text('{"images": [], "categories": []}')
  with pytest.raises(ValueError, match='bad.json has no "categories" list'):
    convert_tfrecords.convert_coco(str(bad), str(tmp_path), str(tmp_path / 'out'))


def test_training_leaves_crowd_objects_out():
  with tf.Graph().as_default():
    example = {'boxes': tf.constant([[0., 0., .5, .5], [.1, .1, .9, .9], [.2, .2, .3, .3]]),
               'labels': tf.constant([1, 2, 3], tf.int64),
               'difficult': tf.constant([0, 0, 1], tf.int64),
               'truncated': tf.constant([1, 0, 0], tf.int64),
               'iscrowd': tf.constant([0, 1, 0], tf.int64),
               'area': tf.constant([10., 20., 30.]), 'num_boxes': tf.constant(3)}
    with tf.compat.v1.Session() as session:
      kept = session.run(input_fn.without_crowd(example))
  np.testing.assert_allclose(kept["boxes"], [[0., 0., .5, .5], [.2, .2, .3, .3]], rtol=1e-6)
  assert kept['labels'].tolist() == [1, 3] and kept['num_boxes'] == 2
  assert kept['difficult'].tolist() == [0, 1] and kept['area'].tolist() == [10, 30]


def _batch(boxes, labels, crowd, detections, height=100, width=200, source_id=b'7'):
  """One-image evaluator batch; boxes and detections normalized [ymin, xmin, ymax, xmax]."""
  det_boxes = np.array([d[0] for d in detections], np.float32).reshape(1, -1, 4)
  return {
      'filename': np.array([b'a.jpg']), 'height': np.array([height]),
      'width': np.array([width]), 'source_id': np.array([source_id]),
      'detection_boxes': det_boxes,
      'detection_scores': np.array([[d[1] for d in detections]], np.float32),
      'detection_classes': np.array([[d[2] for d in detections]], np.int64),
      'num_detections': np.array([len(detections)]),
      'gt_boxes': np.array([boxes], np.float32), 'gt_labels': np.array([labels], np.int64),
      'gt_difficult': np.zeros((1, len(labels)), np.int64),
      'gt_crowd': np.array([crowd], np.int64), 'num_gt': np.array([len(labels)]),
      'gt_area': np.array([[2000.0] * len(labels)], np.float32)}


A = [0.1, 0.1, 0.5, 0.4]     # 40 x 60 px in a 100 x 200 image
B = [0.6, 0.5, 0.9, 0.9]


def _coco_stats(boxes, labels, crowd, detections):
  evaluator = detection_eval.make('coco', ('cat', 'dog'), category_ids=(3, 7))
  evaluator.add_batch(_batch(boxes, labels, crowd, detections))
  return evaluator.compute(), evaluator


def test_crowd_regions_are_ignored_by_coco_and_voc_evaluators():
  # A detection on the crowd region ranked first is neither a TP nor an FP: AP stays 1.
  on_crowd_first = [(B, 0.9, 1), (A, 0.8, 1)]
  stats, _ = _coco_stats([A, B], [1, 1], [0, 1], on_crowd_first)
  assert stats['AP'] == pytest.approx(1.0) and stats['AP50'] == pytest.approx(1.0)
  # Without the crowd object that detection is a false positive above the true one: precision
  # 0.5 at every recall, AP 0.5.
  stats, _ = _coco_stats([A], [1], [0], on_crowd_first)
  assert stats['AP'] == pytest.approx(0.5)
  # A crowd object need not be found: only A is detected and recall is still 1 ...
  stats, _ = _coco_stats([A, B], [1, 1], [0, 1], [(A, 0.8, 1)])
  assert stats['AP'] == pytest.approx(1.0)
  # ... whereas a second normal object missed caps recall at 0.5: 51 of COCO's 101 points.
  stats, _ = _coco_stats([A, B], [1, 1], [0, 0], [(A, 0.8, 1)])
  assert stats['AP'] == pytest.approx(51 / 101)
  voc = detection_eval.make('voc07', ('cat', 'dog'))
  voc.add_batch(_batch([A, B], [1, 1], [0, 1], on_crowd_first))
  assert voc.compute()['AP/cat'] == pytest.approx(1.0)


def test_results_use_original_pixels_and_category_ids(tmp_path):
  _, evaluator = _coco_stats([A, B], [1, 2], [0, 0], [(A, 0.8, 1), (B, 0.7, 2)])
  assert evaluator.results() == [
      {'image_id': 7, 'category_id': 3, 'bbox': [20.0, 10.0, 60.0, 40.0], 'score': 0.8},
      {'image_id': 7, 'category_id': 7, 'bbox': [100.0, 60.0, 80.0, 30.0], 'score': 0.7}]
  ground_truth = evaluator.ground_truth()
  assert [a['bbox'] for a in ground_truth['annotations']] == [[20.0, 10.0, 60.0, 40.0],
                                                              [100.0, 60.0, 80.0, 30.0]]
  assert ground_truth['categories'] == [{'id': 3, 'name': 'cat'}, {'id': 7, 'name': 'dog'}]
  evaluator.write_results(str(tmp_path))
  summary = evaluator.summary()
  assert list(summary) == list(coco_metric.STAT_KEYS) and summary['AP'] == pytest.approx(1.0)


def _perfect_detections(examples):
  """Evaluator batches in which every non-crowd object is detected exactly, score 1."""
  for example in examples.values():
    keep = example['iscrowd'] == 0
    detections = [(box.tolist(), 1.0, int(label))
                  for box, label in zip(example['boxes'][keep], example['labels'][keep])]
    n = int(example['num_boxes'])
    batch = _batch(example['boxes'].tolist() if n else np.zeros((0, 4)).tolist(),
                   example['labels'].tolist(), example['iscrowd'].tolist(),
                   detections or [([0, 0, 0, 0], 0.0, 1)], int(example['height']),
                   int(example['width']), example['source_id'])
    batch['num_detections'] = np.array([len(detections)])
    batch['gt_area'] = example['area'][None, :]
    batch['filename'] = np.array([example['filename']])
    yield batch


def test_perfect_detections_score_ap_1_and_the_results_file_loads_in_pycocotools(tmp_path):
  annotations, images = write_tiny_coco(str(tmp_path), with_problems=False)
  out = str(tmp_path / 'records')
  summary = convert_tfrecords.convert_coco(annotations, images, out, 'val', num_shards=1,
                                           num_workers=1)
  evaluator = detection_eval.make('coco', summary['class_names'], det_dir=str(tmp_path / 'det'),
                                  category_ids=summary['category_ids'])
  assert isinstance(evaluator, coco_detection_eval.CocoDetectionEvaluator)
  for batch in _perfect_detections(_read_records(os.path.join(out, 'val-*'))):
    evaluator.add_batch(batch)
  stats = evaluator.compute()
  assert stats['AP'] == pytest.approx(1.0) and stats['AP75'] == pytest.approx(1.0)
  assert stats['AR100'] == pytest.approx(1.0)
  results_path = str(tmp_path / 'det' / coco_detection_eval.RESULTS_FILENAME)
  # The project's results file against the original instances file, unchanged: pycocotools
  # reads it and scores it 1.0 too (areas, crowd and ids all agree with the user's file).
  ground_truth = coco_metric.load_ground_truth(annotations)
  loaded = ground_truth.loadRes(results_path)
  assert len(loaded.getAnnIds()) == 3 and sorted(loaded.getCatIds()) == [3, 7, 12]
  assert sorted(loaded.getImgIds()) == [101, 102, 103, 104, 105]
  json_path = str(tmp_path / 'coco.json')
  result = subprocess.run([sys.executable, os.path.join(REPO, 'coco_eval.py'),
                           '--annotations=' + annotations, '--results=' + results_path,
                           '--json_output=' + json_path], capture_output=True, text=True,
                          timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
  assert 'Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 1.000' in (
      result.stdout)
  written = json.load(open(json_path))
  assert list(written) == ['AP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'AR1', 'AR10', 'AR100',
                           'ARs', 'ARm', 'ARl']
  assert written['AP'] == pytest.approx(1.0) and written['APl'] == -1.0  # nothing > 96^2 px


def test_coco_eval_script_errors_name_the_file(tmp_path):
  annotations, _ = write_tiny_coco(str(tmp_path))
  results = tmp_path / 'r.json'
  results.write_text(json.dumps([{'image_id': 999, 'category_id': 3, 'bbox': [1, 1, 2, 2],
                                  'score': 0.5}]))
  result = subprocess.run([sys.executable, os.path.join(REPO, 'coco_eval.py'),
                           '--annotations=' + annotations, '--results=' + str(results)],
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 1
  assert 'r.json: image_id 999 is not in the ground truth.' in result.stderr


@pytest.mark.parametrize('recipe, num_anchors, first, last', [
    ('ssd300_coco', 8732, (21.0, 45.0), (261.0, 315.0)),
    ('ssd512_coco', 24564, (20.48, 51.2), (460.8, 542.72)),
])
def test_coco_recipes_state_the_papers_settings(recipe, num_anchors, first, last):
  from absl import flags as absl_flags
  from net import model_spec
  from net import validation
  from utility import labels
  from utility import ssd_flags
  values = absl_flags.FlagValues()
  ssd_flags.define_config_flags(flag_values=values)
  values(['prog', '--flagfile=' + os.path.join(REPO, 'configs', recipe + '.flags')])
  built = ssd_flags.config_from_flags(values)
  validation.validate(built)
  model = built.model
  assert model.num_classes == 81 and model.class_names == labels.COCO_CLASSES
  assert model_spec.category_ids(model)[:12] == (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13)
  layers = model_spec.anchor_layers(model)
  assert (layers[0].min_size, layers[0].max_size) == first
  assert (layers[-1].min_size, layers[-1].max_size) == last
  assert model_spec.num_anchors(model) == num_anchors
  assert built.postprocess.eval_metric == 'coco'
  assert built.train.decay_boundaries == (160000, 200000)
  assert built.train.max_number_of_steps == 240000


def test_category_ids_come_from_the_conversion_summary(tmp_path):
  from absl import flags as absl_flags
  from utility import ssd_flags
  (tmp_path / 'conversion_summary.json').write_text(json.dumps(
      {'class_names': ['cat', 'dog', 'bird'], 'category_ids': [3, 7, 12]}))
  values = absl_flags.FlagValues()
  ssd_flags.define_config_flags(flag_values=values)
  values(['prog'])
  built = ssd_flags.config_from_flags(values, data_dir=str(tmp_path))
  assert built.model.class_names == ('cat', 'dog', 'bird')
  assert built.model.category_ids == (3, 7, 12)
  values = absl_flags.FlagValues()
  ssd_flags.define_config_flags(flag_values=values)
  values(['prog', '--class_names=a,b'])
  built = ssd_flags.config_from_flags(values, data_dir=str(tmp_path))
  assert built.model.category_ids == ()   # another class list: the labels themselves
  with pytest.raises(ValueError, match='--category_ids has 1 ids for 2 classes'):
    from net import validation
    validation.validate(dataclasses_replace_ids(built, (5,)))


def dataclasses_replace_ids(config, ids):
  import dataclasses
  return dataclasses.replace(config, model=dataclasses.replace(config.model, category_ids=ids))


@pytest.fixture(scope='module')
def synthetic_coco(tmp_path_factory):
  """The synthetic generator's COCO format, converted split by split (train, val)."""
  from dataset import make_synthetic_voc
  from tests.conftest import TINY_CLASSES
  root = str(tmp_path_factory.mktemp('synthetic_coco'))
  make_synthetic_voc.generate_coco(root, num_trainval=24, num_test=8, seed=3,
                                   class_names=TINY_CLASSES, min_size=96, max_size=160,
                                   num_workers=1)
  records = os.path.join(root, 'records')
  for split in ('train', 'val'):
    summary = convert_tfrecords.convert_coco(
        os.path.join(root, 'coco', 'annotations', 'instances_%s.json' % split),
        os.path.join(root, 'coco', 'images', split), records, split, num_shards=2,
        num_workers=1)
  return {'root': root, 'records': records, 'summary': summary,
          'val_annotations': os.path.join(root, 'coco', 'annotations', 'instances_val.json')}


def test_coco_path_end_to_end_train_and_eval_then_eval_ssd_and_coco_eval(synthetic_coco,
                                                                          tmp_path):
  """convert -> train (train_and_eval logs the COCO numbers) -> eval_ssd.py --metric=coco ->
  coco_eval.py on its results file against the generator's instances file."""
  import dataclasses
  import glob
  from tests.conftest import tiny_config, train_tiny
  summary = synthetic_coco['summary']
  assert summary['category_ids'] == [2 * i + 1 for i in range(len(summary['class_names']))]
  assert summary['sets']['val']['images_written'] == 8
  config = tiny_config(max_number_of_steps=2, save_checkpoints_steps=2)
  config = dataclasses.replace(
      config, model=dataclasses.replace(config.model, class_names=tuple(summary['class_names']),
                                        category_ids=tuple(summary['category_ids'])),
      postprocess=dataclasses.replace(config.postprocess, eval_metric='coco'))
  model_dir = str(tmp_path / 'model')
  train_tiny(config, synthetic_coco['records'], model_dir, evaluate_during_training=True,
             throttle_secs=0)
  logged = {}
  for path in glob.glob(os.path.join(model_dir, 'eval', 'events.out.tfevents.*')):
    for event in tf.compat.v1.train.summary_iterator(path):
      logged.update((value.tag, value.simple_value) for value in event.summary.value)
  assert {'AP', 'AP50', 'AP75', 'APs', 'APm', 'APl'} <= set(logged) and 'mAP' not in logged
  det_dir, json_path = str(tmp_path / 'det'), str(tmp_path / 'coco.json')
  result = subprocess.run(
      [sys.executable, os.path.join(REPO, 'eval_ssd.py'), '--data_dir=' + synthetic_coco[
          'records'], '--model_dir=' + model_dir, '--metric=coco', '--det_dir=' + det_dir,
       '--json_output=' + json_path], capture_output=True, text=True, timeout=300,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]' in result.stdout
  ours = json.load(open(json_path))
  assert list(ours) == list(coco_metric.STAT_KEYS)
  results_path = os.path.join(det_dir, coco_detection_eval.RESULTS_FILENAME)
  rows = json.load(open(results_path))
  assert rows and {r['category_id'] for r in rows} <= set(summary['category_ids'])
  val = json.load(open(synthetic_coco['val_annotations']))
  sizes = {image['id']: (image['width'], image['height']) for image in val['images']}
  for row in rows:   # original pixels, inside the image
    x, y, w, h = row['bbox']
    width, height = sizes[row['image_id']]
    assert 0 <= x and 0 <= y and w >= 0 and h >= 0
    assert x + w <= width + 1e-3 and y + h <= height + 1e-3
  json_2 = str(tmp_path / 'coco_2.json')
  rescored = subprocess.run([sys.executable, os.path.join(REPO, 'coco_eval.py'),
                             '--annotations=' + synthetic_coco['val_annotations'],
                             '--results=' + results_path, '--json_output=' + json_2],
                            capture_output=True, text=True, timeout=120)
  assert rescored.returncode == 0, rescored.stderr[-2000:]
  theirs = json.load(open(json_2))
  for key in coco_metric.STAT_KEYS:   # ground truth from the records == the instances file
    assert theirs[key] == pytest.approx(ours[key], abs=1e-6), key
