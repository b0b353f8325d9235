import math
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.graph_test_util import execute
from utility import anchors

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
R2, R3 = math.sqrt(2.0), math.sqrt(3.0)


@pytest.fixture(scope='module')
def ssd300():
  return execute(lambda: anchors.generate_anchors(anchors.SSD300_LAYERS, 300))


@pytest.fixture(scope='module')
def ssd512():
  return execute(lambda: anchors.generate_anchors(anchors.SSD512_LAYERS, 512))


def test_counts_and_anchors_per_location():
  assert anchors.num_anchors_per_location(anchors.SSD300_LAYERS) == [4, 6, 6, 6, 4, 4]
  assert anchors.num_anchors_per_location(anchors.SSD512_LAYERS) == [4, 6, 6, 6, 6, 4, 4]
  # 38*38*4 + 19*19*6 + 10*10*6 + 5*5*6 + 3*3*4 + 1*4 = 5776 + 2166 + 600 + 150 + 36 + 4.
  assert anchors.num_anchors(anchors.SSD300_LAYERS) == 8732
  # 64*64*4 + 32*32*6 + 16*16*6 + 8*8*6 + 4*4*6 + 2*2*4 + 1*4 = 16384 + 6144 + 1536 + 384 + 96
  # + 16 + 4.
  assert anchors.num_anchors(anchors.SSD512_LAYERS) == 24564
  assert anchors.PRESETS['ssd300'] == (300, anchors.SSD300_LAYERS)
  assert anchors.PRESETS['ssd512'] == (512, anchors.SSD512_LAYERS)


def test_generated_shapes(ssd300, ssd512):
  assert ssd300.shape == (8732, 4) and ssd300.dtype == np.float32
  assert ssd512.shape == (24564, 4) and ssd512.dtype == np.float32


# First and last box of every SSD300 layer, in pixels of the 300 x 300 input (divide by 300).
# First box = location (0, 0), min square: centre step / 2, half side min / 2.
# Last box = location (f-1, f-1), the 1/r twin of the last ratio r: (w, h) = (min / sqrt(r),
# min * sqrt(r)), so half height min * sqrt(r) / 2 and half width min / sqrt(r) / 2; centre
# (f - 0.5) * step.
SSD300_FIRST_LAST = [
    # layer 0: f 38, step 8, min 30, r 2. Centre 4, half 15 -> [-11, -11, 19, 19].
    # Last: centre 37.5 * 8 = 300, half h 15 sqrt2, half w 15 / sqrt2.
    (0, [-11, -11, 19, 19], 5775, [300 - 15 * R2, 300 - 15 / R2, 300 + 15 * R2, 300 + 15 / R2]),
    # layer 1: f 19, step 16, min 60, r 3. Centre 8, half 30 -> [-22, -22, 38, 38].
    # Last: centre 18.5 * 16 = 296, half h 30 sqrt3, half w 30 / sqrt3 = 10 sqrt3.
    (5776, [-22, -22, 38, 38], 7941,
     [296 - 30 * R3, 296 - 10 * R3, 296 + 30 * R3, 296 + 10 * R3]),
    # layer 2: f 10, step 32, min 111, r 3. Centre 16, half 55.5 -> [-39.5, -39.5, 71.5, 71.5].
    # Last: centre 9.5 * 32 = 304, half h 55.5 sqrt3, half w 55.5 / sqrt3.
    (7942, [-39.5, -39.5, 71.5, 71.5], 8541,
     [304 - 55.5 * R3, 304 - 55.5 / R3, 304 + 55.5 * R3, 304 + 55.5 / R3]),
    # layer 3: f 5, step 64, min 162, r 3. Centre 32, half 81 -> [-49, -49, 113, 113].
    # Last: centre 4.5 * 64 = 288, half h 81 sqrt3, half w 81 / sqrt3 = 27 sqrt3.
    (8542, [-49, -49, 113, 113], 8691,
     [288 - 81 * R3, 288 - 27 * R3, 288 + 81 * R3, 288 + 27 * R3]),
    # layer 4: f 3, step 100, min 213, r 2. Centre 50, half 106.5 -> [-56.5, -56.5, 156.5, 156.5].
    # Last: centre 2.5 * 100 = 250, half h 106.5 sqrt2, half w 106.5 / sqrt2.
    (8692, [-56.5, -56.5, 156.5, 156.5], 8727,
     [250 - 106.5 * R2, 250 - 106.5 / R2, 250 + 106.5 * R2, 250 + 106.5 / R2]),
    # layer 5: f 1, step 300, min 264, r 2. Centre 150, half 132 -> [18, 18, 282, 282].
    # Last: centre 150, half h 132 sqrt2 (~186.7), half w 132 / sqrt2 (~93.3).
    (8728, [18, 18, 282, 282], 8731,
     [150 - 132 * R2, 150 - 132 / R2, 150 + 132 * R2, 150 + 132 / R2]),
]


@pytest.mark.parametrize('first_index, first_pixels, last_index, last_pixels', SSD300_FIRST_LAST)
def test_ssd300_first_and_last_box_of_each_layer(ssd300, first_index, first_pixels, last_index,
                                                  last_pixels):
  np.testing.assert_allclose(ssd300[first_index], np.array(first_pixels) / 300.0, atol=1e-7)
  np.testing.assert_allclose(ssd300[last_index], np.array(last_pixels) / 300.0, atol=1e-7)


def test_ssd300_order_within_and_between_locations(ssd300):
  # Layer 0, location (0, 0), centre (4, 4) px: min square 30; square sqrt(30 * 60) = 42.43;
  # ratio 2 wide (w, h) = (30 sqrt2, 30 / sqrt2); its tall twin (30 / sqrt2, 30 sqrt2).
  big = math.sqrt(30 * 60)
  sizes_hw = [(30, 30), (big, big), (30 / R2, 30 * R2), (30 * R2, 30 / R2)]
  expected = [[4 - h / 2, 4 - w / 2, 4 + h / 2, 4 + w / 2] for h, w in sizes_hw]
  np.testing.assert_allclose(ssd300[0:4], np.array(expected) / 300.0, atol=1e-7)
  # x moves before y: box 4 is location (y 0, x 1), centre (4, 12); box 38 * 4 is (1, 0).
  np.testing.assert_allclose(ssd300[4], np.array([-11, -3, 19, 27]) / 300.0, atol=1e-7)
  np.testing.assert_allclose(ssd300[152], np.array([-3, -11, 27, 19]) / 300.0, atol=1e-7)
  # Layer 1 (ratios 2, 3), location (0, 0), boxes 3..6 of 6: after ratio 2's pair, ratio 3's wide
  # box (w, h) = (60 sqrt3, 60 / sqrt3) then its twin; centre 8.
  wide3, tall3 = ssd300[5776 + 4], ssd300[5776 + 5]
  np.testing.assert_allclose(wide3, np.array([8 - 10 * R3, 8 - 30 * R3, 8 + 10 * R3,
                                              8 + 30 * R3]) / 300.0, atol=1e-7)
  np.testing.assert_allclose(tall3, np.array([8 - 30 * R3, 8 - 10 * R3, 8 + 30 * R3,
                                              8 + 10 * R3]) / 300.0, atol=1e-7)


def test_location_box_sizes_caffe_order():
  layer = anchors.AnchorLayer(10, 32, 111, 162, (2.0, 3.0))
  big = math.sqrt(111 * 162)
  expected = [(111, 111), (big, big), (111 / R2, 111 * R2), (111 * R2, 111 / R2),
              (111 / R3, 111 * R3), (111 * R3, 111 / R3)]  # (height, width)
  np.testing.assert_allclose(anchors.location_box_sizes(layer), expected, rtol=1e-12)


def test_ssd512_first_and_last_boxes(ssd512):
  # Layer 0: f 64, step 8, min 35.84: centre 4, half 17.92.
  np.testing.assert_allclose(ssd512[0], np.array([-13.92, -13.92, 21.92, 21.92]) / 512, atol=1e-7)
  # Layer 1 starts at 16384: f 32, step 16, min 76.8: centre 8, half 38.4.
  np.testing.assert_allclose(ssd512[16384], np.array([-30.4, -30.4, 46.4, 46.4]) / 512,
                             atol=1e-7)
  # Last layer (index 24560): f 1, step 512, min 460.8, max 537.6: centre 256.
  np.testing.assert_allclose(ssd512[24560], np.array([25.6, 25.6, 486.4, 486.4]) / 512,
                             atol=1e-7)
  big = math.sqrt(460.8 * 537.6) / 2
  np.testing.assert_allclose(ssd512[24561], np.array([256 - big] * 2 + [256 + big] * 2) / 512,
                             atol=1e-7)
  # Last box: ratio-2 twin, half h 230.4 sqrt2, half w 230.4 / sqrt2.
  np.testing.assert_allclose(
      ssd512[24563], np.array([256 - 230.4 * R2, 256 - 230.4 / R2, 256 + 230.4 * R2,
                               256 + 230.4 / R2]) / 512, atol=1e-7)


def test_clip(ssd300):
  clipped = execute(lambda: anchors.generate_anchors(anchors.SSD300_LAYERS, 300, clip=True))
  assert clipped.min() == 0.0 and clipped.max() == 1.0
  assert ssd300.min() < -0.1 and ssd300.max() > 1.1  # unclipped: e.g. last layer's tall box
  np.testing.assert_allclose(clipped[0], [0, 0, 19 / 300, 19 / 300], atol=1e-7)
  np.testing.assert_array_equal(clipped, np.clip(ssd300, 0.0, 1.0))


def test_scaled_layers_paper_formula():
  # Paper eq. 4 with m = 6, s_min 0.2, s_max 0.9: s_k = 0.2 + 0.14 k; s_6 = 1.04 extrapolated.
  layers = anchors.scaled_layers([38, 19, 10, 5, 3, 1], 300)
  np.testing.assert_allclose([l.min_size for l in layers], [60, 102, 144, 186, 228, 270])
  np.testing.assert_allclose([l.max_size for l in layers], [102, 144, 186, 228, 270, 312])
  np.testing.assert_allclose([l.step for l in layers], [300 / 38, 300 / 19, 30, 60, 100, 300])
  assert all(l.aspect_ratios == (2.0,) for l in layers)


def test_scaled_layers_first_scale_gives_tf_port_scales():
  layers = anchors.scaled_layers([38, 19, 10, 5, 3, 1], 300, first_scale=0.1,
                                 aspect_ratios=[(2,), (2, 3), (2, 3), (2, 3), (2,), (2,)])
  # Scales 0.1, then 0.2 + 0.175 k: 0.2, 0.375, 0.55, 0.725, 0.9; last max 0.9 + 0.175.
  np.testing.assert_allclose([l.min_size for l in layers], [30, 60, 112.5, 165, 217.5, 270])
  np.testing.assert_allclose([l.max_size for l in layers], [60, 112.5, 165, 217.5, 270, 322.5])
  assert anchors.num_anchors_per_location(layers) == [4, 6, 6, 6, 4, 4]


def test_scaled_layers_small_model():
  # A quick model: 128 px input, maps 16, 8, 4. Scales 0.2, 0.55, 0.9, then 1.25.
  layers = anchors.scaled_layers([16, 8, 4], 128)
  assert [(l.feature_size, l.step) for l in layers] == [(16, 8.0), (8, 16.0), (4, 32.0)]
  np.testing.assert_allclose([l.min_size for l in layers], [25.6, 70.4, 115.2])
  np.testing.assert_allclose([l.max_size for l in layers], [70.4, 115.2, 160.0])
  out = execute(lambda: anchors.generate_anchors(layers, 128))
  assert out.shape == ((256 + 64 + 16) * 4, 4)
  np.testing.assert_allclose(out[0], [4 / 128 - 0.1, 4 / 128 - 0.1, 4 / 128 + 0.1,
                                      4 / 128 + 0.1], atol=1e-7)


def test_bad_settings_raise():
  with pytest.raises(ValueError, match='aspect_ratios must be > 0 and != 1'):
    anchors.AnchorLayer(3, 100, 213, 264, (1.0,))
  with pytest.raises(ValueError, match='feature_size must be a positive integer'):
    anchors.AnchorLayer(0, 100, 213, 264)
  with pytest.raises(ValueError, match='one per layer'):
    anchors.scaled_layers([4, 2], 64, aspect_ratios=[(2,)])
  with pytest.raises(ValueError, match='min_scale <= max_scale'):
    anchors.scaled_layers([4, 2], 64, min_scale=0.9, max_scale=0.2)


def _run_cli(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
  return subprocess.run([sys.executable] + list(args), cwd=REPO_ROOT, env=env,
                        capture_output=True, text=True, timeout=120)


def test_cli_module_writes_anchors(tmp_path, ssd300):
  output = tmp_path / 'anchors.npy'
  result = _run_cli('-m', 'utility.anchors', '--preset=ssd300', '--output=%s' % output)
  assert result.returncode == 0, result.stderr
  written = np.load(output)
  assert written.dtype == np.float32 and written.shape == (8732, 4)
  np.testing.assert_array_equal(written, ssd300)
  assert os.listdir(tmp_path) == ['anchors.npy']  # no temp file left behind


def test_cli_script_clips_and_draws(tmp_path):
  import cv2
  output, drawing = tmp_path / 'a512.npy', tmp_path / 'layer6.png'
  result = _run_cli('utility/anchors.py', '--preset=ssd512', '--clip', '--output=%s' % output,
                    '--draw=%s' % drawing, '--layer=6')
  assert result.returncode == 0, result.stderr
  written = np.load(output)
  assert written.shape == (24564, 4) and written.min() == 0.0 and written.max() == 1.0
  image = cv2.imread(str(drawing))
  assert image.shape[1] == 512 and image.shape[0] > 512  # model input size plus legend strip
  canvas = image[:512]
  # Layer 6 min square (clipped) spans 25.6 .. 486.4 px: its red edge is drawn at row 26.
  assert tuple(canvas[26, 256]) == (0, 0, 255)
  assert (canvas == 255).mean() > 0.9  # otherwise blank


def test_draw_layer_out_of_range():
  with pytest.raises(ValueError, match=r'--layer=6 is out of range: this preset has layers 0..5'):
    anchors.draw_layer(anchors.SSD300_LAYERS, 300, 6, np.zeros([8732, 4], np.float32))
