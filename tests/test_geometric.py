import numpy as np
import pytest
import tensorflow as tf

from bench import input_pipeline
from preprocessing import geometric
from tests.graph_test_util import execute
from utility import boxes as boxes_lib

tf1 = tf.compat.v1

MEAN = (1.0, 2.0, 3.0)  # distinct from every test colour, so the canvas is recognisable
RED = (250.0, 10.0, 10.0)
GREY = (100.0, 100.0, 100.0)


def _rectangle_image(height=48, width=64, rect=(10, 30, 20, 50)):
  """Grey image with a red rectangle at pixel rows [y0, y1) and columns [x0, x1).

  Returns the image (float32) and the rectangle as a normalized box [1, 4].
  """
  image = np.empty([height, width, 3], np.float32)
  image[:] = GREY
  y0, x0, y1, x1 = rect
  image[y0:y1, x0:x1] = RED
  box = np.array([[y0 / height, x0 / width, y1 / height, x1 / width]], np.float32)
  return image, box


def _assert_box_is_exactly_the_rectangle(image, box):
  """The pixels of the normalized box are red, the 1-pixel ring around it is not."""
  height, width = image.shape[:2]
  y0, x0, y1, x1 = np.round(box * [height, width, height, width]).astype(int)
  np.testing.assert_allclose(box * [height, width, height, width], [y0, x0, y1, x1], atol=1e-3)
  assert np.all(image[y0:y1, x0:x1] == RED)
  ring = np.ones([height, width], bool)
  ring[max(y0 - 1, 0):y1 + 1, max(x0 - 1, 0):x1 + 1] = False
  ring[y0:y1, x0:x1] = True
  assert not np.any(np.all(image[~ring] == RED, axis=-1))


def _np_iou(box, boxes):
  y0 = np.maximum(box[0], boxes[:, 0])
  x0 = np.maximum(box[1], boxes[:, 1])
  y1 = np.minimum(box[2], boxes[:, 2])
  x1 = np.minimum(box[3], boxes[:, 3])
  inter = np.maximum(y1 - y0, 0) * np.maximum(x1 - x0, 0)
  area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
  return inter / (area(box) + area(boxes) - inter)


def test_sample_expand_bounds_and_prob_0():
  with tf.Graph().as_default():
    seed = tf1.placeholder(tf.int64, [2])
    on = geometric.sample_expand(tf.constant([48, 64]), prob=1.0, max_ratio=4.0, seed=seed)
    off = geometric.sample_expand(tf.constant([48, 64]), prob=0.0, seed=seed)
    with tf1.Session() as sess:
      for i in range(50):
        expanded, same = sess.run([on, off], {seed: [i, 3]})
        canvas, offset = expanded['canvas_size'], expanded['expand_offset']
        assert 48 <= canvas[0] <= 192 and 64 <= canvas[1] <= 256
        assert abs(canvas[0] / 48 - canvas[1] / 64) < 1.0 / 48   # one ratio for both sides
        assert np.all(offset >= 0) and np.all(offset + [48, 64] <= canvas)
        assert same['canvas_size'].tolist() == [48, 64]
        assert same['expand_offset'].tolist() == [0, 0]


def test_expand_keeps_every_box_on_the_same_pixels_of_the_object():
  image, box = _rectangle_image()
  with tf.Graph().as_default():
    seed = tf1.placeholder(tf.int64, [2])
    canvas, boxes = geometric.expand(tf.constant(image), tf.constant(box), MEAN, prob=1.0,
                                     seed=seed)
    params = geometric.sample_expand(tf.constant([48, 64]), 1.0, 4.0, seed)
    with tf1.Session() as sess:
      for i in range(10):
        canvas_np, boxes_np, p = sess.run([canvas, boxes, params], {seed: [i, 0]})
        assert canvas_np.shape[:2] == tuple(p['canvas_size'])
        _assert_box_is_exactly_the_rectangle(canvas_np, boxes_np[0])
        top, left = p['expand_offset']
        np.testing.assert_array_equal(canvas_np[top:top + 48, left:left + 64], image)
        outside = np.ones(canvas_np.shape[:2], bool)
        outside[top:top + 48, left:left + 64] = False
        assert np.all(canvas_np[outside] == MEAN)


def test_apply_crop_hand_computed():
  canvas = np.arange(10 * 20 * 3, dtype=np.float32).reshape(10, 20, 3)
  # Pixels: b0 = [1, 2, 5, 10], b1 = [0, 10, 10, 20], b2 = [9, 18, 10, 20] (centre outside).
  boxes = np.array([[0.1, 0.1, 0.5, 0.5], [0.0, 0.5, 1.0, 1.0], [0.9, 0.9, 1.0, 1.0]],
                   np.float32)
  labels = np.array([7, 8, 9], np.int64)
  rect = np.array([2, 4, 8, 14], np.int32)
  keep = np.array([True, True, False])
  patch, out_boxes, out_labels = execute(geometric.apply_crop, canvas, boxes, labels, rect, keep)
  np.testing.assert_array_equal(patch, canvas[2:8, 4:14])
  # Clipped to the rect [2, 4, 8, 14], shifted by (2, 4), divided by (6, 10).
  np.testing.assert_allclose(out_boxes, [[0.0, 0.0, 0.5, 0.6], [0.0, 0.6, 1.0, 1.0]], atol=1e-6)
  assert out_labels.tolist() == [7, 8]


def _gt_boxes():
  # Three small boxes and a large one (so that the 0.9 mode can succeed).
  return np.array([[0.05, 0.05, 0.35, 0.30], [0.02, 0.03, 0.97, 0.98],
                   [0.10, 0.60, 0.30, 0.95], [0.50, 0.05, 0.70, 0.40]], np.float32)


def test_random_crop_meets_its_constraints_and_keeps_labels_aligned():
  height, width = 48, 64
  image = np.random.RandomState(0).uniform(0, 255, [height, width, 3]).astype(np.float32)
  boxes = _gt_boxes()
  labels = np.array([11, 12, 13, 14], np.int64)
  config = geometric.GeometricConfig()
  samplers_seen = set()
  with tf.Graph().as_default():
    seed = tf1.placeholder(tf.int64, [2])
    outputs = geometric.random_crop_with_constraints(
        tf.constant(image), tf.constant(boxes), tf.constant(labels), seed=seed)
    with tf1.Session() as sess:
      for i in range(200):
        patch_image, out_boxes, out_labels, info = sess.run(outputs, {seed: [i, 5]})
        y0, x0, y1, x1 = info['crop_rect']
        np.testing.assert_array_equal(patch_image, image[y0:y1, x0:x1])
        patch = info['crop_patch'].astype(np.float64)
        np.testing.assert_allclose(patch, [y0 / height, x0 / width, y1 / height, x1 / width])
        samplers_seen.add(int(info['crop_sampler']))
        assert info['crop_found'] == (info['crop_sampler'] >= 0)
        if not info['crop_found']:
          assert [y0, x0, y1, x1] == [0, 0, height, width]
          assert out_labels.tolist() == labels.tolist()
          continue
        # Caffe's patch: area s^2 with s in [0.3, 1], aspect w/h in [max(0.5, s^2),
        # min(2, 1/s^2)], up to the floor to whole pixels.
        side_h, side_w = patch[2] - patch[0], patch[3] - patch[1]
        scale = np.sqrt(side_h * side_w)
        assert 0.3 - 2.0 / height <= scale <= 1.0
        aspect = side_w / side_h
        assert max(0.5, scale ** 2) * 0.9 <= aspect <= min(2.0, 1 / scale ** 2) * 1.1
        # Some GT overlaps the patch with an IoU in the sampler's [min, max].
        low = config.crop_min_ious[info['crop_sampler']]
        assert _np_iou(patch, boxes.astype(np.float64)).max() >= low - 1e-6
        # Exactly the GTs whose centre is inside (edges included) are kept, in order.
        cy = (boxes[:, 0] + boxes[:, 2]) / 2
        cx = (boxes[:, 1] + boxes[:, 3]) / 2
        inside = (cy >= patch[0]) & (cy <= patch[2]) & (cx >= patch[1]) & (cx <= patch[3])
        assert out_labels.tolist() == labels[inside].tolist()
        clipped = np.clip(boxes[inside], patch[[0, 1, 0, 1]], patch[[2, 3, 2, 3]])
        expected = (clipped - patch[[0, 1, 0, 1]]) / [side_h, side_w, side_h, side_w]
        np.testing.assert_allclose(out_boxes.reshape(-1, 4), expected.reshape(-1, 4), atol=1e-5)
        assert np.all(out_boxes >= 0.0) and np.all(out_boxes <= 1.0)
  # The whole image (-1), the min-IoU samplers 0.1 ... 0.9 and the any-overlap sampler.
  assert samplers_seen == {-1, 0, 1, 2, 3, 4, 5}


def test_crop_may_keep_no_object_as_caffe_does():
  # One small box in a corner: the any-overlap sampler (IoU in [0, 1]) accepts patches that
  # miss it, and Caffe crops to them; the image then has no object.
  # Most draws collect only the whole image and that sampler (a patch of area >= 0.09 reaches
  # IoU 0.1 with this box only when it is small and on it), so about half the crops miss.
  boxes = np.array([[0.0, 0.0, 0.1, 0.1]], np.float32)
  empty = 0
  with tf.Graph().as_default():
    seed = tf1.placeholder(tf.int64, [2])
    info = geometric.sample_crop(tf.constant(boxes), tf.constant([100, 100]), seed=seed)
    with tf1.Session() as sess:
      for i in range(400):
        out = sess.run(info, {seed: [i, 9]})
        if not out['crop_keep'][0]:
          empty += 1
          assert out['crop_sampler'] == 5  # only the any-overlap sampler can miss the box
  rng = np.random.default_rng(0)
  np_empty = sum(not input_pipeline.np_crop_rect(boxes * 100.0, 100, 100, rng)[1][0]
                 for _ in range(2000))
  assert 0.3 < np_empty / 2000 < 0.5
  assert abs(empty / 400 - np_empty / 2000) < 0.08


def test_crop_with_no_boxes_keeps_the_whole_image():
  # Every sampler needs a box to overlap, so only the whole-image sample is collected.
  image = np.zeros([8, 10, 3], np.float32)
  for i in range(5):
    patch, out_boxes, out_labels, info = execute(
        lambda x, b, l: geometric.random_crop_with_constraints(x, b, l, seed=i),
        image, np.zeros([0, 4], np.float32), np.zeros([0], np.int64))
    assert patch.shape == (8, 10, 3) and out_boxes.shape == (0, 4) and out_labels.shape == (0,)
    assert not info['crop_found'] and info['crop_sampler'] == -1


def test_crop_without_the_whole_image_sampler_always_crops_when_a_sampler_succeeds():
  config = geometric.GeometricConfig(crop_whole_image=False, crop_min_ious=(0.0,),
                                     crop_max_ious=(1.0,))
  boxes = np.array([[0.4, 0.4, 0.6, 0.6]], np.float32)
  found = [execute(lambda b: geometric.sample_crop(b, tf.constant([50, 50]), config,
                                                   seed=i)['crop_sampler'], boxes)
           for i in range(10)]
  assert found == [0] * 10


def _caffe_statistics_tf(box, num_draws, config):
  """Fractions over num_draws of expand + crop draws (100 x 100 image): uncropped, kept."""
  with tf.Graph().as_default():
    seed = tf1.placeholder(tf.int64, [2])
    params = geometric.sample_geometric_params(tf.constant([100, 100]), tf.constant(box),
                                               config, seed)
    with tf1.Session() as sess:
      draws = [sess.run([params['crop_found'], params['crop_keep'], params['crop_patch']],
                        {seed: [i, 77]}) for i in range(num_draws)]
  found = np.array([d[0] for d in draws])
  patches = np.array([d[2] for d in draws])[found]
  return (1.0 - found.mean(), np.mean([d[1][0] for d in draws]), patches)


def _caffe_statistics_numpy(box, num_draws, config):
  """The same from the numpy implementation of Caffe's expand and sampler (bench)."""
  rng = np.random.default_rng(3)
  uncropped, kept, patches = 0, 0, []
  image = np.zeros([100, 100, 3], np.float32)
  for _ in range(num_draws):
    canvas, pixels = input_pipeline.np_expand(image, box * 100.0, rng, (0.0, 0.0, 0.0), config)
    height, width = canvas.shape[:2]
    rect, keep, sampler = input_pipeline.np_crop_rect(pixels, height, width, rng, config)
    uncropped += sampler == -1
    kept += keep[0]
    if sampler >= 0:
      patches.append(rect / np.array([height, width, height, width], np.float64))
  return uncropped / num_draws, kept / num_draws, np.array(patches)


def _histograms(patches):
  side_h, side_w = patches[:, 2] - patches[:, 0], patches[:, 3] - patches[:, 1]
  area, _ = np.histogram(side_h * side_w, bins=[0.0, 0.2, 0.4, 0.6, 0.8, 1.01])
  aspect, _ = np.histogram(np.log(side_w / side_h), bins=[-0.8, -0.35, -0.1, 0.1, 0.35, 0.8])
  return area / len(patches), aspect / len(patches)


@pytest.mark.parametrize('side,caffe_uncropped', [(0.1, 0.49), (0.4, 0.28), (0.7, 0.21)])
def test_crop_sampler_statistics_equal_a_numpy_implementation_of_caffes(side, caffe_uncropped):
  # A centred square object, expansion with p 0.5 as in the recipe. 1,500 draws: the
  # standard error of a fraction is at most 0.013, of a difference of two about 0.018.
  config = geometric.GeometricConfig()
  low = 0.5 - side / 2
  box = np.array([[low, low, low + side, low + side]], np.float32)
  tf_uncropped, tf_kept, tf_patches = _caffe_statistics_tf(box, 1500, config)
  np_uncropped, np_kept, np_patches = _caffe_statistics_numpy(box, 1500, config)
  # Caffe's fraction of uncropped samples, by simulation of its sampler (the figures).
  assert abs(np_uncropped - caffe_uncropped) < 0.04
  assert abs(tf_uncropped - np_uncropped) < 0.06
  assert abs(tf_kept - np_kept) < 0.05
  for tf_hist, np_hist in zip(_histograms(tf_patches), _histograms(np_patches)):
    np.testing.assert_allclose(tf_hist, np_hist, atol=0.06)


def test_flip_moves_image_and_boxes_as_numpy_says():
  image, box = _rectangle_image()
  flipped, flipped_boxes = execute(
      lambda x, b: geometric.random_flip_left_right(x, b, prob=1.0, seed=0), image, box)
  np.testing.assert_array_equal(flipped, image[:, ::-1])
  np.testing.assert_allclose(flipped_boxes, [[box[0, 0], 1 - box[0, 3], box[0, 2],
                                              1 - box[0, 1]]], atol=1e-7)
  _assert_box_is_exactly_the_rectangle(flipped, flipped_boxes[0])
  same, same_boxes = execute(
      lambda x, b: geometric.random_flip_left_right(x, b, prob=0.0, seed=0), image, box)
  np.testing.assert_array_equal(same, image)
  np.testing.assert_array_equal(same_boxes, box)


def test_resize_keeps_normalized_boxes_on_the_object():
  # Halving: each output pixel averages 2x2 input pixels, and the rectangle's edges are even.
  image, box = _rectangle_image(rect=(10, 30, 20, 50))
  resized, resized_boxes = execute(lambda x, b: geometric.resize(x, b, (24, 32)), image, box)
  assert resized.shape == (24, 32, 3) and resized.dtype == np.float32
  np.testing.assert_array_equal(resized_boxes, box)
  _assert_box_is_exactly_the_rectangle(resized, resized_boxes[0])
  # Rows [5, 10), columns [15, 25) of the output, as numpy says for a factor of 2.
  np.testing.assert_allclose(resized_boxes[0] * [24, 32, 24, 32], [5, 15, 10, 25], atol=1e-5)


def _smooth_image(height=48, width=64):
  y, x = np.mgrid[0:height, 0:width].astype(np.float32)
  return np.stack([127 + 100 * np.sin(x / 9.0), 127 + 100 * np.cos(y / 7.0),
                   127 + 80 * np.sin((x + y) / 11.0)], axis=-1).round().astype(np.uint8)


def _rect_output(image, rect, out_size, flip):
  pixels, paddings = geometric.crop_and_resize_rect(image, tf.constant(rect, tf.int32), out_size,
                                                    flip)
  return tf.pad(pixels, paddings), paddings


def test_crop_and_resize_rect_inside_the_image_equals_crop_then_resize():
  image = _smooth_image()
  rect = [8, 5, 40, 61]

  def fn(x):
    fast, paddings = _rect_output(x, rect, (16, 24), flip=False)
    flipped, _ = _rect_output(x, rect, (16, 24), flip=True)
    reference, _ = geometric.resize(x[8:40, 5:61], tf.zeros([0, 4]), (16, 24))
    return fast, flipped, paddings, reference
  fast, flipped, paddings, reference = execute(fn, image)
  assert paddings.tolist() == [[0, 0], [0, 0], [0, 0]]
  np.testing.assert_array_equal(fast, reference)
  np.testing.assert_array_equal(flipped, reference[:, ::-1])


@pytest.mark.parametrize('flip', [False, True])
def test_crop_and_resize_rect_beyond_the_image_leaves_the_canvas_out(flip):
  # A 96 x 96 canvas with the 48 x 64 image at (24, 16), sampled onto 24 x 24 (factor 4):
  # output row i samples canvas row 4 i + 1.5, on the image for i in 6..17; columns 4..19.
  image = _smooth_image()
  rect = [-24, -16, 72, 80]

  def fn(x):
    fast, paddings = _rect_output(x, rect, (24, 24), flip=flip)
    canvas, _ = geometric.apply_expand(tf.cast(x, tf.float32), tf.zeros([0, 4]), [24, 16],
                                       [96, 96], MEAN)
    reference, _ = geometric.resize(canvas, tf.zeros([0, 4]), (24, 24))
    return fast, paddings, reference
  fast, paddings, reference = execute(fn, image)
  if flip:
    reference = reference[:, ::-1]
  assert paddings.tolist() == [[6, 6], [4, 4], [0, 0]]
  np.testing.assert_allclose(fast[6:18, 4:20], reference[6:18, 4:20], atol=1e-3)
  assert np.all(fast[:6] == 0.0) and np.all(fast[:, 20:] == 0.0)


def test_crop_and_resize_rect_beyond_the_image_clamps_at_the_image_border():
  # Rows [0, 12) of a 48-row image onto 24 rows (upscaling): the first output row samples
  # row -0.25, which the reference clamps to row 0; the rect reaches beyond on the right only.
  # (The last row samples 11.25: the reference clamps at the crop edge, the fast path reads
  # row 12, so it is left out of the comparison.)
  image = _smooth_image()
  fast = execute(lambda x: _rect_output(x, [0, 32, 12, 96], (24, 32), flip=False)[0], image)
  reference = execute(lambda x: geometric.resize(x[0:12, 32:64], tf.zeros([0, 4]), (24, 16))[0],
                      image)
  np.testing.assert_allclose(fast[:-1, :16], reference[:-1, :16], atol=1e-3)
  assert np.all(fast[:, 16:] == 0.0)


def test_crop_and_resize_rect_that_misses_every_pixel_centre_is_all_canvas():
  # Rows: edges [47, 240] of a 48-row image onto 4 rows: centres 71.1, ... all off the image.
  image = _smooth_image()
  pixels, paddings = execute(lambda x: geometric.crop_and_resize_rect(
      x, tf.constant([47, 0, 240, 64]), (4, 8)), image)
  assert pixels.shape == (0, 8, 3)
  assert paddings.tolist() == [[0, 4], [0, 0], [0, 0]]


def test_crop_rect_and_window_in_image_hand_computed():
  rect, window = execute(lambda: (
      geometric.crop_rect_in_image(tf.constant([10, 20]), tf.constant([5, 10, 45, 60])),
      geometric.crop_window_in_image(tf.constant([40, 50]), tf.constant([10, 20]),
                                     tf.constant([5, 10, 45, 60]))))
  assert rect.tolist() == [-5, -10, 35, 40]
  np.testing.assert_allclose(window, [-0.125, -0.2, 0.875, 0.8], atol=1e-7)


def test_sample_geometric_params_is_reproducible_per_seed():
  boxes = _gt_boxes()

  def fn(b):
    return [geometric.sample_geometric_params(tf.constant([48, 64]), b, seed=s)
            for s in (tf.constant([1, 2], tf.int64), tf.constant([1, 2], tf.int64),
                      tf.constant([2, 2], tf.int64))]
  a, b, c = execute(fn, boxes)
  assert all(np.array_equal(a[k], b[k]) for k in a)
  assert any(not np.array_equal(a[k], c[k]) for k in a)


def test_config_rejects_bad_values_with_a_message():
  with pytest.raises(ValueError, match='max_expand_ratio must be >= 1'):
    geometric.GeometricConfig(max_expand_ratio=0.5)
  with pytest.raises(ValueError, match='crop_min_scale'):
    geometric.GeometricConfig(crop_min_scale=0.0)
  with pytest.raises(ValueError, match='crop_min_ious / crop_max_ious must be IoUs'):
    geometric.GeometricConfig(crop_min_ious=(0.1, 5.0), crop_max_ious=(1.0, 1.0))
  with pytest.raises(ValueError, match='one value per sampler; got 2 and 6'):
    geometric.GeometricConfig(crop_min_ious=(0.1, 0.3))
  with pytest.raises(ValueError, match='crop_max_aspect_ratio; got 0.5 and 0.9'):
    geometric.GeometricConfig(crop_min_aspect_ratio=0.5, crop_max_aspect_ratio=0.9)
  with pytest.raises(ValueError, match='mean_rgb must hold 3 values'):
    geometric.rgb_constant((1.0, 2.0))


def test_box_helpers_added_to_utility_boxes():
  # change_coordinate_frame: the window maps to [0, 0, 1, 1]; flip_left_right: x -> 1 - x.
  boxes = np.array([[0.2, 0.3, 0.6, 0.5]], np.float32)
  window = np.array([0.0, 0.25, 0.5, 0.75], np.float32)
  framed, flipped = execute(lambda b, w: (boxes_lib.change_coordinate_frame(b, w),
                                          boxes_lib.flip_left_right(b)), boxes, window)
  np.testing.assert_allclose(framed, [[0.4, 0.1, 1.2, 0.5]], atol=1e-6)
  np.testing.assert_allclose(flipped, [[0.2, 0.5, 0.6, 0.7]], atol=1e-6)
