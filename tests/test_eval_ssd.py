"""eval_ssd.py as a user runs it: result files, the JSON contract, one-sentence errors."""

import glob
import json
import os
import re
import subprocess
import sys

import pytest
import tensorflow as tf

from dataset import voc
from tests.conftest import tiny_config, train_tiny

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _eval(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  return subprocess.run([sys.executable, os.path.join(REPO, 'eval_ssd.py')] + list(args),
                        env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope='module')
def tiny_model(tiny_records, tmp_path_factory):
  model_dir = str(tmp_path_factory.mktemp('eval_model'))
  train_tiny(tiny_config(max_number_of_steps=1), tiny_records['records'], model_dir)
  return model_dir


def _event_files(model_dir):
  return set(glob.glob(os.path.join(model_dir, 'eval', 'events.out.tfevents.*')))


def test_eval_writes_devkit_files_and_the_json_contract(tiny_records, tiny_model, tmp_path):
  det_dir, json_path = str(tmp_path / 'det'), str(tmp_path / 'map.json')
  events_before = _event_files(tiny_model)
  result = _eval('--data_dir=' + tiny_records['records'], '--model_dir=' + tiny_model,
                 '--det_dir=' + det_dir, '--json_output=' + json_path, '--batch_size=3',
                 '--max_detections_per_image=20', '--eval_images=2')
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'mAP' in result.stdout and '(step 1):' in result.stdout
  # Progress on stderr (absl), then the closing paragraph: the 8 test images in batches of 3.
  assert 'evaluation: 3/8 images' in result.stderr  # the first batch, then every 10 s
  assert 'evaluation: 8/8 images (100%)' in result.stderr
  assert re.search(r'Evaluated 8 images from \S+model\.ckpt-1 \(step 1\) in 0m\d\ds, '
                   r'[\d.]+ images/s: mAP \d\.\d{4}\.', result.stdout), result.stdout
  summary = json.load(open(json_path))
  assert set(summary) == {'mAP', 'ap', 'metric'} and summary['metric'] == 'voc07'
  assert set(summary['ap']) == set(tiny_records['class_names'])
  test_ids = set(voc.read_split_ids(tiny_records['voc_root'], 'VOC2007', 'test'))
  sizes = {i: voc.parse_annotation(voc.annotation_path(tiny_records['voc_root'], 'VOC2007', i))
           for i in test_ids}
  rows = 0
  for name in tiny_records['class_names']:
    for line in open(os.path.join(det_dir, 'comp4_det_test_%s.txt' % name)):
      image_id, score, xmin, ymin, xmax, ymax = line.split()
      rows += 1
      assert image_id in test_ids and 0.01 < float(score) <= 1.0
      width, height = sizes[image_id].width, sizes[image_id].height
      # Boxes are clipped to the image, in 1-based pixels: edges in [1, width] x [1, height]
      # (a min edge may reach size + 1 - epsilon) and a positive devkit size (max - min + 1).
      xmin, ymin, xmax, ymax = map(float, (xmin, ymin, xmax, ymax))
      assert 1.0 <= xmin < width + 1 and 0.0 < xmax <= width and xmax - xmin + 1 > 0
      assert 1.0 <= ymin < height + 1 and 0.0 < ymax <= height and ymax - ymin + 1 > 0
  assert 0 < rows <= 20 * len(test_ids)  # at most --max_detections_per_image per image
  _check_tensorboard(_event_files(tiny_model) - events_before, sizes)


def _check_tensorboard(new_event_files, annotations):
  """net/eval_summaries.py through the Estimator: a PR curve per class with non-difficult
  ground truth and --eval_images=2 images at 160 px height plus the caption, at step 1."""
  values = {}
  for path in new_event_files:
    for event in tf.compat.v1.train.summary_iterator(path):
      values.update((value.tag, (event.step, value)) for value in event.summary.value)
  with_gt = {o.name for a in annotations.values() for o in a.objects if not o.difficult}
  assert {tag for tag in values if tag.startswith('pr_curve/')} == {
      'pr_curve/%s/0' % name for name in with_gt}
  assert values['pr_curve/%s/0' % sorted(with_gt)[0]][1].metadata.plugin_data.plugin_name == (
      'pr_curves')
  assert sorted(tag for tag in values if tag.startswith('eval_images')) == [
      'eval_images/0', 'eval_images/1']
  widths = {2 * round(160 * a.width / a.height) + 4 for a in annotations.values()}
  for tag in ('eval_images/0', 'eval_images/1'):
    step, value = values[tag]
    assert step == 1 and value.image.height == 180 and value.image.width in widths


def test_eval_without_a_checkpoint_says_so(tiny_records, tmp_path):
  model_dir = str(tmp_path / 'untrained')
  from utility import config
  config.save(tiny_config(), model_dir)
  result = _eval('--data_dir=' + tiny_records['records'], '--model_dir=' + model_dir)
  assert result.returncode == 1
  assert '%s holds no checkpoint: train a model into it with train_ssd.py first' % model_dir in (
      result.stderr)


def test_eval_with_an_empty_pattern_says_so(tiny_model, tmp_path):
  result = _eval('--data_dir=' + str(tmp_path), '--model_dir=' + tiny_model)
  assert result.returncode == 1
  assert "No TFRecord files match '%s/val-*'" % tmp_path in result.stderr


def test_the_coco_metric_runs_on_voc_records(tiny_records, tiny_model, tmp_path):
  """VOC records have no image id or crowd flag: images are numbered 1..N by file name and
  difficult objects become crowd regions; the twelve COCO keys are written."""
  det_dir, json_path = str(tmp_path / 'det'), str(tmp_path / 'coco.json')
  result = _eval('--data_dir=' + tiny_records['records'], '--model_dir=' + tiny_model,
                 '--det_dir=' + det_dir, '--json_output=' + json_path, '--metric=coco')
  assert result.returncode == 0, result.stderr[-3000:]
  summary = json.load(open(json_path))
  assert list(summary) == ['AP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'AR1', 'AR10', 'AR100',
                           'ARs', 'ARm', 'ARl']
  assert all(-1.0 <= value <= 1.0 for value in summary.values())
  rows = json.load(open(os.path.join(det_dir, 'coco_results.json')))
  assert rows and {row['image_id'] for row in rows} <= set(range(1, 9))  # 8 test images
  assert {row['category_id'] for row in rows} <= set(range(1, len(tiny_records['class_names'])
                                                           + 1))
