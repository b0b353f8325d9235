import dataclasses
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from net import export
from net import model_fn
from net import model_spec
from tests.conftest import tiny_config
from tests.graph_test_util import execute
from utility import box_coder
from utility import image_convention
from utility import tflite_postprocess as post

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _settings(**changes):
  base = post.Settings(image_size=160, mean_rgb=(123.68, 116.78, 103.94), std_rgb=(1.0, 1.0, 1.0),
                       channel_order='rgb', class_names=('a', 'b'),
                       prior_variances=(0.1, 0.1, 0.2, 0.2), score_threshold=0.01,
                       pre_nms_top_k=400, nms_iou_threshold=0.45, max_detections_per_class=200,
                       max_detections_per_image=5)
  return dataclasses.replace(base, **changes)


def test_decode_hand_computed_boxes_and_the_scale_bound():
  anchors = np.array([[0.2, 0.2, 0.6, 0.4]], np.float32)  # cy 0.4, cx 0.3, h 0.4, w 0.2
  offsets = np.array([[[0.0, 0.0, 0.0, 0.0],
                       [1.0, -2.0, math.log(2.0) / 0.2, 0.0],  # cy + 0.04, cx - 0.04, h x 2
                       [0.0, 0.0, 100.0, 0.0]]], np.float32)  # h x 62.5 at most
  boxes = post.decode_boxes(offsets.transpose(1, 0, 2), anchors, (0.1, 0.1, 0.2, 0.2))
  assert boxes.dtype == np.float32 and boxes.shape == (3, 1, 4)
  np.testing.assert_allclose(boxes[0, 0], anchors[0], atol=1e-7)
  np.testing.assert_allclose(boxes[1, 0], [0.04, 0.16, 0.84, 0.36], atol=1e-6)
  np.testing.assert_allclose(boxes[2, 0], [0.4 - 12.5, 0.2, 0.4 + 12.5, 0.4], atol=1e-5)
  assert post.MAX_LOG_SCALE == box_coder.MAX_LOG_SCALE
  np.testing.assert_allclose(
      boxes[:, 0], execute(box_coder.decode, offsets[0], anchors[0].reshape(1, 4).repeat(3, 0)),
      atol=1e-6)


def test_hand_made_overlaps_threshold_and_background():
  # The case of tests/test_nms.py, through the numpy NMS of one image.
  boxes = np.array([[0.0, 0.0, 0.5, 0.5],     # 0
                    [0.0, 0.1, 0.5, 0.6],     # 1: IoU with 0 = 0.2 / 0.3 = 0.667 > 0.45
                    [0.6, 0.6, 1.0, 1.0],     # 2: disjoint
                    [0.0, 0.0, 1.0, 0.5]],    # 3: IoU with 0 = 0.5
                   np.float32)
  scores = np.array([[0.99, 0.9, 0.0], [0.99, 0.8, 0.6], [0.99, 0.7, 0.01], [0.99, 0.0, 0.0]],
                    np.float32)                # class 2 of box 2 at exactly the threshold
  out = post.multiclass_nms(boxes, scores, _settings())
  assert out['num_detections'] == 3
  np.testing.assert_array_equal(out['scores'], np.float32([0.9, 0.7, 0.6, 0, 0]))
  assert out['classes'].tolist() == [1, 1, 2, 0, 0] and out['classes'].dtype == np.int32
  np.testing.assert_array_equal(out['boxes'][:3], boxes[[0, 2, 1]])
  assert not out['boxes'][3:].any()
  # IoU exactly at the threshold is kept (box 3 against box 0: 0.5).
  pair = post.multiclass_nms(boxes[[0, 3]], np.float32([[0, 0.9], [0, 0.8]]),
                             _settings(nms_iou_threshold=0.5))
  assert pair['num_detections'] == 2


def test_caps_and_ties_per_class_and_per_image():
  # Four disjoint boxes; class 1 scores tie, so anchor order decides (as utility/nms.py).
  boxes = np.array([[0.0, 0.0, 0.1, 0.1], [0.2, 0.2, 0.3, 0.3], [0.4, 0.4, 0.5, 0.5],
                    [0.6, 0.6, 0.7, 0.7]], np.float32)
  scores = np.float32([[0, 0.5, 0.2], [0, 0.5, 0.3], [0, 0.5, 0.4], [0, 0.5, 0.1]])
  top2 = post.multiclass_nms(boxes, scores, _settings(pre_nms_top_k=2, max_detections_per_image=6))
  np.testing.assert_array_equal(top2['boxes'][:4], boxes[[0, 1, 2, 1]])
  assert top2['classes'].tolist() == [1, 1, 2, 2, 0, 0]
  per_class = post.multiclass_nms(boxes, scores, _settings(max_detections_per_class=1))
  assert per_class['classes'].tolist() == [1, 2, 0, 0, 0]
  per_image = post.multiclass_nms(boxes, scores, _settings(max_detections_per_image=3))
  assert per_image['classes'].tolist() == [1, 1, 1] and per_image['num_detections'] == 3
  # 100 tied disjoint boxes (numpy's default argsort would start at anchor 88): anchors 0-4.
  corners = np.arange(100, dtype=np.float32)[:, None] * 0.01
  grid = np.concatenate([corners, corners, corners + 0.005, corners + 0.005], axis=1)
  tied = post.multiclass_nms(grid, np.float32([[0.0, 0.5]] * 100), _settings(pre_nms_top_k=5))
  np.testing.assert_array_equal(tied['boxes'], grid[:5])


def _random_network_outputs(num_anchors, num_classes, seed):
  rng = np.random.RandomState(seed)
  offsets = rng.randn(1, num_anchors, 4).astype(np.float32)
  logits = (rng.randn(1, num_anchors, num_classes) * 3.0).astype(np.float32)
  offsets[0, :10, 0] = 1000.0  # pushed below the image: clipped to nothing, never detected
  logits[0, :10, 1] = 20.0  # though they score best
  return offsets, logits


@pytest.mark.parametrize('postprocess', [
    dict(),  # the reference settings
    dict(score_threshold=0.2, pre_nms_top_k=30, nms_iou_threshold=0.3,
         max_detections_per_class=8, max_detections_per_image=20),  # every cap binds
])
def test_equals_the_model_fn_detection_output(postprocess):
  config = tiny_config()
  config = dataclasses.replace(config, postprocess=dataclasses.replace(config.postprocess,
                                                                       **postprocess))
  anchors = execute(lambda: model_spec.generate_anchors(config.model))
  offsets, logits = _random_network_outputs(len(anchors), config.model.num_classes, seed=4)

  def tf_path(box_offsets, class_logits):
    detections = model_fn.build_detections(
        {'box_offsets': box_offsets, 'class_logits': class_logits}, anchors, config)
    return detections, tf.nn.softmax(class_logits, axis=-1)  # the .tflite's class_scores

  expected, class_scores = execute(tf_path, offsets, logits)
  settings = export.tflite_settings(config)
  assert settings.max_detections_per_image == config.postprocess.max_detections_per_image
  result = post.postprocess(offsets, class_scores, anchors, settings)

  count = expected['num_detections'][0]
  assert result['num_detections'].tolist() == [count]
  assert count == (20 if postprocess else 200)  # caps bind with these inputs
  np.testing.assert_array_equal(result['classes'], expected['classes'])
  np.testing.assert_array_equal(result['scores'], expected['scores'])
  np.testing.assert_allclose(result['boxes'], expected['boxes'], atol=1e-6)
  # The boxes clipped to nothing are not among the detections.
  clipped = np.clip(post.decode_boxes(offsets, anchors, settings.prior_variances)[0, :10], 0, 1)
  assert (clipped[:, 0] == 1.0).all()
  assert not any((np.abs(result['boxes'][0] - box).max(-1) < 1e-7).any() for box in clipped)


def test_settings_round_trip_and_load_export(tmp_path):
  settings = _settings(channel_order='bgr', class_names=('cat', 'dog'))
  (tmp_path / post.SETTINGS_FILENAME).write_text(settings.to_json())
  with pytest.raises(FileNotFoundError, match='anchors.npy does not exist: write the TFLite '
                     'export with export_ssd.py --model_dir=DIR --tflite'):
    post.load_export(str(tmp_path))
  np.save(str(tmp_path / post.ANCHORS_FILENAME), np.float64([[0.1, 0.2, 0.3, 0.4]]))
  loaded, anchors = post.load_export(str(tmp_path))
  assert loaded == settings
  assert anchors.dtype == np.float32 and anchors.tolist() == [np.float32([0.1, 0.2, 0.3, 0.4])
                                                             .tolist()]


def test_normalize_image_equals_the_image_convention():
  convention = image_convention.ImageConvention(mean_rgb=(127.5, 100.0, 50.0),
                                                std_rgb=(127.5, 2.0, 4.0), channel_order='bgr')
  settings = _settings(mean_rgb=convention.mean_rgb, std_rgb=convention.std_rgb,
                       channel_order='bgr')
  pixels = np.random.RandomState(0).uniform(0, 255, [2, 5, 3]).astype(np.float32)
  np.testing.assert_allclose(post.normalize_image(pixels, settings),
                             execute(convention.normalize, pixels), atol=1e-5)
  np.testing.assert_allclose(post.normalize_image(pixels, settings)[0, 0],
                             [(pixels[0, 0, 2] - 50) / 4, (pixels[0, 0, 1] - 100) / 2,
                              pixels[0, 0, 0] / 127.5 - 1], atol=1e-5)


def test_imports_numpy_only():
  code = ('import sys; import utility.tflite_postprocess; '
          "print(sorted(m for m in sys.modules if m.split('.')[0] == 'tensorflow'))")
  output = subprocess.run([sys.executable, '-c', code], cwd=REPO_ROOT, check=True,
                          capture_output=True, text=True).stdout
  assert output.strip() == '[]'
