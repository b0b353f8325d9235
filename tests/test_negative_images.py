"""Images without objects: kept by the converter on request, mined for hard negatives in
training with --min_negatives_per_image, counted as false positives in evaluation."""

import dataclasses
import os

import numpy as np
import pytest

from dataset import convert_tfrecords as convert
from dataset import input_fn
from net import detection_eval
from net import losses
from net import model_spec
from net import validation
from tests.conftest import tiny_config
from tests.graph_test_util import execute
from tests.test_convert_tfrecords import TRAIN, VAL, build_tree, read_records
from utility import labels


@pytest.fixture(scope='module')
def with_empty(tmp_path_factory):
  root = build_tree(tmp_path_factory.mktemp('voc'))
  out = str(tmp_path_factory.mktemp('records'))
  summary = convert.convert(root, out, TRAIN, VAL, train_shards=1, val_shards=1, num_workers=1,
                            keep_empty_images=True)
  return root, out, summary


def test_keep_empty_images_writes_training_images_without_objects(with_empty, tmp_path):
  root, out, summary = with_empty
  train = read_records(os.path.join(out, 'train-*'))
  # 000011's only object is invalid: skipped by default (test_convert_tfrecords), kept here.
  assert '000011.jpg' in train and train['000011.jpg']['num_boxes'] == 0
  assert summary['sets']['train']['images_without_objects'] == 1
  assert summary['sets']['train']['images_written'] == 8
  xml = os.path.join(root, 'VOCdevkit', 'VOC2007', 'Annotations', '000011.xml')
  assert '%s has no valid object; kept as an image without objects.' % xml in summary['notes']
  assert 'VOC2007/000011' not in [item['image'] for item in summary['skipped']]
  lines = convert.format_summary(summary)
  assert any(line.startswith('train (VOC2007:trainval): 8 of ') and
             line.endswith('1 images without objects') for line in lines)


def test_min_negatives_mines_negatives_where_there_is_no_positive():
  # Image 0: no positive; image 1: one positive (anchor 0). Background losses rise with the
  # anchor index, so the hardest negatives are the last anchors.
  bg_logit = -np.arange(6, dtype=np.float32)
  logits = np.stack([np.stack([bg_logit, np.zeros(6, np.float32)], -1)] * 2)
  cls_targets = np.array([[0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, -1]], np.int64)
  zeros = np.zeros([2, 6, 4], np.float32)

  def mask(**kwargs):
    return execute(lambda l, o, c, t: losses.multibox_loss(l, o, c, t, **kwargs)[
        'selected_mask'], logits, zeros, cls_targets, zeros)

  assert mask().tolist() == [[False] * 6, [True, False, True, True, True, False]]
  # Caffe (0) mines nothing in image 0; 2 mines its two hardest; in image 1 the ratio (3) wins.
  assert mask(min_negatives_per_image=2).tolist() == [
      [False, False, False, False, True, True], [True, False, True, True, True, False]]
  # More than the image's negatives: all of them (anchor 5 of image 1 is ignored, never mined).
  assert mask(min_negatives_per_image=9).tolist() == [[True] * 6, [True] * 5 + [False]]
  loss = execute(lambda l, o, c, t: losses.multibox_loss(
      l, o, c, t, min_negatives_per_image=2)['classification_loss'],
      logits[:1], zeros[:1], cls_targets[:1], zeros[:1])
  # No positive: N = max(0, 1) = 1, the loss is the two mined negatives' -log p_background.
  expected = sum(np.log1p(np.exp(-b)) for b in (-4.0, -5.0))
  assert loss == pytest.approx(expected, rel=1e-5)


def test_training_pipeline_keeps_images_without_objects_only_with_min_negatives(with_empty):
  _, out, _ = with_empty
  base = tiny_config()
  # No crop and no expansion, so every augmented image keeps its objects.
  config = dataclasses.replace(
      base, model=dataclasses.replace(base.model, class_names=labels.VOC_CLASSES),
      input=dataclasses.replace(base.input, crop_min_ious=(), crop_max_ious=(),
                                crop_whole_image=True, expand_probability=0.0))
  inputs = model_spec.model_inputs(config.model)
  pattern = os.path.join(out, 'train-*')
  # 8 training images, one empty; 24 samples are three epochs: each image three times.
  default = input_fn.sample_training_batch(pattern, config, inputs, 24, seed=1)
  assert int((default['num_boxes'] == 0).sum()) == 0
  mining = dataclasses.replace(config, train=dataclasses.replace(
      config.train, min_negatives_per_image=3))
  sampled = input_fn.sample_training_batch(pattern, mining, inputs, 24, seed=1)
  empty = sampled['num_boxes'] == 0
  assert int(empty.sum()) == 3
  assert np.all(sampled['boxes'][empty] == 0)
  with pytest.raises(ValueError, match='--min_negatives_per_image must be >= 0, got -1'):
    validation.validate(dataclasses.replace(config, train=dataclasses.replace(
        config.train, min_negatives_per_image=-1)))


def test_detections_on_an_image_without_objects_are_false_positives():
  evaluator = detection_eval.make('voc07', ('cat', 'dog'))
  box = np.array([[[0.1, 0.1, 0.5, 0.5]]], np.float32)
  for filename, num_gt, score in ((b'with_cat.jpg', 1, 0.5), (b'empty.jpg', 0, 0.9)):
    evaluator.add_batch({
        'filename': np.array([filename]), 'height': np.array([100]), 'width': np.array([100]),
        'detection_boxes': box, 'detection_scores': np.array([[score]], np.float32),
        'detection_classes': np.array([[1]]), 'num_detections': np.array([1]),
        'gt_boxes': box, 'gt_labels': np.array([[1]]), 'gt_difficult': np.array([[0]]),
        'num_gt': np.array([num_gt]), 'source_id': np.array([b'']),
        'gt_crowd': np.array([[0]]), 'gt_area': np.array([[1600.0]], np.float32)})
  # Ranked: the empty image's detection (FP, 0.9), then the true one (TP, 0.5): precision 0.5
  # at every recall level, 11-point AP 0.5.
  assert evaluator.compute()['AP/cat'] == pytest.approx(0.5)
