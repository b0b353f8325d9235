import json
import os

import numpy as np
import pytest

from bench import input_pipeline
from tests import graph_test_util
from tests.conftest import tiny_config
from utility import target_assigner


def test_run_steps_counts_the_requested_images():
  calls = []
  result = input_pipeline.run_steps(lambda: calls.append(1), 4, num_images=12)
  assert len(calls) == 1 + 3                     # one warm-up call, then 3 x 4 images
  assert result['images'] == 12
  with pytest.raises(ValueError, match='positive multiple of the batch size 4; got 10'):
    input_pipeline.run_steps(lambda: None, 4, num_images=10)
  with pytest.raises(ValueError, match='exactly one of seconds'):
    input_pipeline.run_steps(lambda: None, 4, seconds=1.0, num_images=8)


def test_numpy_target_encoding_matches_the_tf_target_assigner():
  anchors = np.array([[0.0, 0.0, 0.5, 0.5], [0.0, 0.5, 0.5, 1.0], [0.5, 0.0, 1.0, 0.5],
                      [0.5, 0.5, 1.0, 1.0], [0.2, 0.2, 0.8, 0.8]], np.float32)
  boxes = np.array([[0.05, 0.0, 0.5, 0.45], [0.55, 0.6, 0.9, 0.9]], np.float32)
  labels = np.array([3, 7], np.int64)
  cls_np, loc_np = input_pipeline.np_encode_targets(anchors, boxes, labels)
  expected = graph_test_util.execute(
      lambda a, b, l: target_assigner.assign_targets(a, b, l), anchors, boxes, labels)
  np.testing.assert_array_equal(cls_np, [3, 0, 0, 7, 0])
  np.testing.assert_array_equal(cls_np, expected['cls_targets'])
  np.testing.assert_allclose(loc_np, expected['loc_targets'], rtol=1e-5, atol=1e-5)


def test_measuring_functions_count_images_and_fill_the_summary(tiny_records):
  config = tiny_config()
  pattern = os.path.join(tiny_records['records'], 'train-*')
  stages = input_pipeline.measure_tf_stages(pattern, config, batch_size=4, num_images=8)
  assert list(stages) == list(input_pipeline.STAGES)
  assert [r['images'] for r in stages.values()] == [8, 8, 8, 8]
  baseline = input_pipeline.measure_numpy_baseline(pattern, config, batch_size=4, num_workers=2,
                                                   num_images=12)
  assert baseline['images'] == 12 and sorted(baseline['images_per_worker']) == [4, 8]
  assert list(baseline['ms_per_image']) == list(input_pipeline.BASELINE_STEPS)

  summary = input_pipeline.summarize({1: stages, 2: stages}, baseline, {'image_size': 160})
  line = json.dumps(summary)
  assert json.loads(line) == summary
  required = {'images_per_sec_1core', 'images_per_sec_2cores',
              'images_per_sec_numpy_baseline_2procs', 'speedup_2cores_vs_numpy_baseline',
              'cores_used_1core', 'cores_used_2cores', 'cores_used_numpy_baseline_2procs',
              'images_per_sec_2free_cores_estimate',
              'images_per_sec_numpy_baseline_2free_cores_estimate'}
  for cores in ('1core', '2cores'):
    for stage in input_pipeline.STAGES:
      required |= {'images_per_sec_stage_%s_%s' % (stage, cores),
                   'cpu_ms_per_image_stage_%s_%s' % (stage, cores)}
      assert summary['images_counted_stage_%s_%s' % (stage, cores)] == 8
  required |= {'ms_per_image_numpy_baseline_%s' % s for s in input_pipeline.BASELINE_STEPS}
  assert required <= set(summary)
  assert summary['images_counted_numpy_baseline'] == 12 and summary['image_size'] == 160
  assert summary['images_per_sec_2cores'] == round(stages['batch']['images_per_sec'], 1)
  # The estimate is 2 cores divided by the measured CPU time per image.
  assert summary['images_per_sec_2free_cores_estimate'] == round(
      2000.0 / stages['batch']['cpu_ms_per_image'], 1)
  table = input_pipeline.format_table({1: stages, 2: stages}, baseline)
  assert [line.split('  ')[0] for line in table[1:5]] == [
      'read + decode', '+ augmentation', '+ target encoding',
      '+ batching (= input_fn.train_dataset)']


def test_baseline_reads_every_record_with_its_boxes(tiny_records):
  records = input_pipeline.read_records(os.path.join(tiny_records['records'], 'train-*'))
  assert len(records) == 24
  for jpeg, boxes, labels, difficult in records:
    assert jpeg[:2] == b'\xff\xd8' and boxes.shape == (len(labels), 4)
    assert len(difficult) == len(labels) and ((labels >= 1) & (labels <= 5)).all()
    assert (boxes[:, 2:] > boxes[:, :2]).all() and ((boxes >= 0) & (boxes <= 1)).all()


def test_numpy_matching_equals_the_tf_matcher_on_conflicts():
  from utility import matcher
  rng = np.random.RandomState(4)
  for _ in range(30):
    num_gt, num_anchors = rng.randint(1, 6), rng.randint(1, 20)
    iou = np.round(rng.uniform(0, 1, [num_gt, num_anchors]) ** 2, 1).astype(np.float32)
    iou[rng.uniform(size=iou.shape) < 0.5] = 0.0
    expected = graph_test_util.execute(lambda m: matcher.match(m), iou)
    assert input_pipeline.np_match(iou).tolist() == expected.tolist(), iou
