import os

import numpy as np
import pytest
import tensorflow as tf

import voc_eval
from dataset import input_fn
from dataset import voc
from net import detection_eval
from net import model_spec
from tests.conftest import tiny_config
from utility import voc_metric

tf1 = tf.compat.v1


def _eval_batches(tiny_records):
  config = tiny_config()
  pattern = os.path.join(tiny_records['records'], 'val-*')
  with tf.Graph().as_default():
    next_element = tf1.data.make_one_shot_iterator(
        input_fn.eval_dataset(pattern, config, model_spec.model_inputs(config.model), 4)).get_next()
    with tf1.Session() as sess:
      return [sess.run(next_element) for _ in range(2)]


def _feed_ground_truth_as_detections(accumulator, batches):
  for features, labels in batches:
    accumulator.update(
        features['filename'], features['height'], features['width'], labels['boxes'],
        np.where(labels['labels'] > 0, 0.9, 0.0).astype(np.float32),
        labels['labels'].astype(np.int32), labels['num_boxes'], labels['boxes'],
        labels['labels'], labels['difficult'], labels['num_boxes'])


def test_perfect_detections_score_ap_1_and_invert_the_record_boxes_exactly(tiny_records, tmp_path):
  det_dir = str(tmp_path / 'det')
  names = tiny_records['class_names']
  accumulator = detection_eval.VocDetectionAccumulator(names, det_dir=det_dir)
  _feed_ground_truth_as_detections(accumulator, _eval_batches(tiny_records))
  values = accumulator.compute()
  summary = accumulator.last_summary
  # Every class with ground truth has AP 1.0 (difficult GTs are detected too: neither TP nor FP).
  assert summary['mAP'] == 1.0
  assert all(ap == 1.0 for ap in summary['ap'].values() if ap is not None)
  assert values['mAP'] == 1.0

  # The result files hold the XML's pixel boxes: normalized -> pixels inverts the converter.
  detections = voc_metric.read_detections(det_dir, names)
  for name in names:
    for image_id, box in zip(detections[name].image_ids, detections[name].boxes):
      annotation = voc.parse_annotation(
          voc.annotation_path(tiny_records['voc_root'], 'VOC2007', image_id))
      xml_boxes = np.array([[o.xmin, o.ymin, o.xmax, o.ymax] for o in annotation.objects
                            if o.name == name])
      assert np.abs(xml_boxes - box).max(axis=1).min() <= 0.05  # files keep 1 decimal

  # And the standalone evaluator, reading the XML itself, agrees.
  summary_from_xml, _ = voc_eval.run_eval(tiny_records['voc_root'], '2007', 'test', det_dir,
                                          class_names=','.join(names))
  assert summary_from_xml['mAP'] == 1.0


def test_shifted_detections_lose_ap(tiny_records):
  batches = _eval_batches(tiny_records)
  for _, labels in batches:
    labels['boxes'] = labels['boxes'].copy()
  accumulator = detection_eval.VocDetectionAccumulator(tiny_records['class_names'])
  for features, labels in batches:
    shifted = labels['boxes'] + np.array([0.0, 0.6, 0.0, 0.6], np.float32)  # far right: IoU 0
    accumulator.update(features['filename'], features['height'], features['width'], shifted,
                       np.full(labels['labels'].shape, 0.9, np.float32),
                       labels['labels'].astype(np.int32), labels['num_boxes'], labels['boxes'],
                       labels['labels'], labels['difficult'], labels['num_boxes'])
  accumulator.compute()
  assert accumulator.last_summary['mAP'] < 0.2


def test_image_id_from_filename():
  assert detection_eval.image_id_from_filename(b'000005.jpg') == '000005'
  assert detection_eval.image_id_from_filename('dir/2008_000123.jpg') == '2008_000123'


class _CountingEvaluator(detection_eval.DetectionEvaluator):
  """A contributor's COCO-style stub: counts images and detections above 0.5."""

  metric_names = ('images', 'confident_detections')

  def __init__(self, class_names, det_dir=None, category_ids=()):
    del class_names, det_dir, category_ids
    self.reset()

  def reset(self):
    self.counts = {'images': 0, 'confident_detections': 0}

  def add_batch(self, batch):
    self.counts['images'] += len(batch['filename'])
    self.counts['confident_detections'] += int((batch['detection_scores'] > 0.5).sum())

  def compute(self):
    return dict((name, float(self.counts[name])) for name in self.metric_names)

  def write_results(self, directory):
    raise NotImplementedError


def test_an_evaluator_registered_in_a_test_is_chosen_by_the_settings(tiny_records, tmp_path):
  import dataclasses
  import glob
  from tests.conftest import train_tiny
  detection_eval.register('test_counting', _CountingEvaluator)
  config = tiny_config(max_number_of_steps=1, save_checkpoints_steps=1)
  config = dataclasses.replace(config, postprocess=dataclasses.replace(
      config.postprocess, eval_metric='test_counting'))
  model_dir = str(tmp_path / 'model')
  train_tiny(config, tiny_records['records'], model_dir, evaluate_during_training=True,
             throttle_secs=0)
  values = {}
  for path in glob.glob(os.path.join(model_dir, 'eval', 'events.out.tfevents.*')):
    for event in tf1.train.summary_iterator(path):
      values.update((value.tag, value.simple_value) for value in event.summary.value)
  assert values['images'] == 8.0  # the tiny val split, every image once
  assert 'mAP' not in values
  with pytest.raises(ValueError, match="Unknown evaluation metric 'cityscapes': use one of "
                                       'area, coco, test_counting, voc07'):
    detection_eval.make('cityscapes', ('a',))
