import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from net import layers
from net import ssd_net
from net import vgg
from tests.graph_test_util import execute

tf1 = tf.compat.v1

# docs/RECIPE.md: anchors per location of the reference presets (the anchor generator computes
# them).
SSD300_ANCHORS = [4, 6, 6, 6, 4, 4]
SSD512_ANCHORS = [4, 6, 6, 6, 6, 4, 4]
# Smallest square input whose 'VALID' layers still fit (ssd_net.feature_map_sizes says 257).
SMALL_IMAGE = 257


def _build(architecture, anchors, size, **kwargs):
  images = tf1.placeholder(tf.float32, [None, size, size, 3])
  return images, ssd_net.build_ssd(images, architecture, 21, anchors, **kwargs)


@pytest.mark.parametrize('architecture, anchors, num_anchors', [
    ('ssd300', SSD300_ANCHORS, 8732), ('ssd512', SSD512_ANCHORS, 24564)])
def test_output_shapes_with_unknown_batch(architecture, anchors, num_anchors):
  with tf.Graph().as_default():
    size = ssd_net.ARCHITECTURES[architecture].image_size
    _, outputs = _build(architecture, anchors, size)
    assert outputs['box_offsets'].shape.as_list() == [None, num_anchors, 4]
    assert outputs['class_logits'].shape.as_list() == [None, num_anchors, 21]
    assert outputs['box_offsets'].dtype == tf.float32
    assert outputs['class_logits'].dtype == tf.float32
    # The static source shapes agree with the graph-free computation.
    sizes = ssd_net.feature_map_sizes(architecture, size)
    assert outputs['feature_map_sizes'] == sizes
    assert [f.shape.as_list()[1] for f in outputs['feature_maps']] == sizes
    assert sum(s * s * k for s, k in zip(sizes, anchors)) == num_anchors


def test_ssd300_parameter_count_and_split():
  # SSD300, 21 classes: 26,285,486 trainable parameters =
  #   backbone     20,483,904  (VGG16 convs 14,714,688 + fc6 4,719,616 + fc7 1,049,600)
  #   l2norm              512  (conv4_3 scale)
  #   extras        2,459,520  (conv8_1..conv11_2)
  #   box_heads       534,648  (k*4 outputs, k = 4,6,6,6,4,4)
  #   class_heads   2,806,902  (k*21 outputs)
  with tf.Graph().as_default():
    _build('ssd300', SSD300_ANCHORS, 300)
    counts = ssd_net.count_parameters('ssd300')
  assert dict(counts) == {'backbone': 20483904, 'l2norm': 512, 'extras': 2459520,
                          'box_heads': 534648, 'class_heads': 2806902, 'total': 26285486}


def test_feature_map_sizes_of_the_presets_and_too_small_image():
  assert ssd_net.feature_map_sizes('ssd300') == [38, 19, 10, 5, 3, 1]
  assert ssd_net.feature_map_sizes('ssd512') == [64, 32, 16, 8, 4, 2, 1]
  assert ssd_net.feature_map_sizes('ssd300', SMALL_IMAGE) == [33, 17, 9, 5, 3, 1]
  with pytest.raises(ValueError, match=r'image_size 256 is too small for ssd300 .* at least 257'):
    ssd_net.feature_map_sizes('ssd300', 256)


def test_backbone_variables_have_slim_names_under_the_model_scope():
  with tf.Graph().as_default():
    _build('ssd300', SSD300_ANCHORS, 300)
    shapes = {v.op.name: v.shape.as_list() for v in tf1.global_variables()
              if v.op.name.startswith('ssd300/vgg_16/')}
  expected = {}
  depth_in = 3
  for block, num_convs, depth in [('conv1', 2, 64), ('conv2', 2, 128), ('conv3', 3, 256),
                                  ('conv4', 3, 512), ('conv5', 3, 512)]:
    for i in range(1, num_convs + 1):
      prefix = 'ssd300/vgg_16/%s/%s_%d/' % (block, block, i)
      expected[prefix + 'weights'] = [3, 3, depth_in, depth]
      expected[prefix + 'biases'] = [depth]
      depth_in = depth
  expected.update({'ssd300/vgg_16/fc6/weights': [3, 3, 512, 1024],
                   'ssd300/vgg_16/fc6/biases': [1024],
                   'ssd300/vgg_16/fc7/weights': [1, 1, 1024, 1024],
                   'ssd300/vgg_16/fc7/biases': [1024]})
  assert shapes == expected


def test_width_multiplier_rounds_half_up_with_a_floor_of_8():
  assert [vgg.scaled_depth(d, 1.0 / 16) for d in (64, 128, 256, 512, 1024)] == [8, 8, 16, 32, 64]
  assert [vgg.scaled_depth(d, 0.5) for d in (64, 1024)] == [32, 512]
  with pytest.raises(ValueError, match='width_multiplier must be > 0'):
    vgg.scaled_depth(64, 0.0)


def test_anchors_per_location_length_mismatch_is_a_clear_error():
  with tf.Graph().as_default():
    with pytest.raises(ValueError, match=r'anchors_per_location must give one count per source of '
                                         r'ssd512 \(7: conv4_3, fc7, conv8_2, .*conv12_2\)'):
      _build('ssd512', SSD300_ANCHORS, 512)


def test_bad_arguments_are_clear_errors():
  with tf.Graph().as_default():
    with pytest.raises(ValueError, match="Unknown architecture 'ssd400'"):
      _build('ssd400', SSD300_ANCHORS, 300)
    with pytest.raises(ValueError, match="data_format must be 'NHWC' or 'NCHW'"):
      _build('ssd300', SSD300_ANCHORS, 300, data_format='HWCN')
    with pytest.raises(ValueError, match='static square size'):
      ssd_net.build_ssd(tf1.placeholder(tf.float32, [None, 300, 200, 3]), 'ssd300', 21,
                        SSD300_ANCHORS)


@pytest.mark.parametrize('data_format', ['NHWC', 'NCHW'])
def test_l2_normalization_matches_numpy(data_format):
  rng = np.random.RandomState(0)
  x = rng.randn(2, 3, 4, 5).astype(np.float32)  # NHWC, 5 channels.
  x[0, 0, 0] = 0.0  # An all-zero pixel stays zero (epsilon guard, no NaN).
  scale = np.array([1., 2., 3., 4., 5.], np.float32)
  with tf.Graph().as_default():
    inputs = tf.constant(x if data_format == 'NHWC' else x.transpose([0, 3, 1, 2]))
    outputs = layers.l2_normalization(inputs, 20.0, data_format, scope='norm')
    [variable] = tf1.global_variables()
    with tf1.Session() as session:
      session.run(variable.initializer)
      initial = session.run(outputs)
      session.run(variable.assign(scale))
      scaled = session.run(outputs)
  if data_format == 'NCHW':
    initial, scaled = initial.transpose([0, 2, 3, 1]), scaled.transpose([0, 2, 3, 1])
  norm = np.sqrt(np.maximum(np.sum(x * x, axis=-1, keepdims=True), 1e-10))
  assert variable.op.name == 'norm/scale'
  np.testing.assert_allclose(initial, x / norm * 20.0, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(scaled, x / norm * scale, rtol=1e-5, atol=1e-6)
  assert np.all(scaled[0, 0, 0] == 0.0)


def test_l2_normalization_scale_starts_at_20():
  with tf.Graph().as_default():
    _build('ssd300', SSD300_ANCHORS, 300)
    [scale] = [v for v in tf1.global_variables() if v.op.name == 'ssd300/conv4_3_norm/scale']
    with tf1.Session() as session:
      session.run(scale.initializer)
      np.testing.assert_array_equal(session.run(scale), np.full([512], 20.0, np.float32))


def test_predictions_flatten_in_source_y_x_anchor_order():
  with tf.Graph().as_default():
    images, outputs = _build('ssd300', SSD300_ANCHORS, SMALL_IMAGE, width_multiplier=1.0 / 16)
    graph = tf1.get_default_graph()
    # fc7 head (second source, 17x17, 6 anchors), before flattening: [batch, y, x, 6 * 21].
    fc7_logits = graph.get_tensor_by_name('ssd300/class_heads/fc7/BiasAdd:0')
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      feed = {images: np.random.RandomState(1).randn(2, SMALL_IMAGE, SMALL_IMAGE, 3)}
      head, logits = session.run([fc7_logits, outputs['class_logits']], feed)
  start = 33 * 33 * 4  # Anchors of conv4_3 come first.
  for y, x, anchor in [(0, 0, 0), (0, 1, 5), (3, 16, 2), (16, 16, 5)]:
    index = start + (y * 17 + x) * 6 + anchor
    np.testing.assert_array_equal(logits[:, index], head[:, y, x, anchor * 21:(anchor + 1) * 21])


def _run_small_model(architecture, data_format, images_value, checkpoint_path, save):
  """Builds a width-1/16 model in a fresh graph; saves fresh weights or restores them; runs it."""
  anchors = SSD300_ANCHORS if architecture == 'ssd300' else SSD512_ANCHORS
  with tf.Graph().as_default():
    images = tf1.placeholder(tf.float32, [None, SMALL_IMAGE, SMALL_IMAGE, 3])
    outputs = ssd_net.build_ssd(images, architecture, 5, anchors, data_format=data_format,
                                width_multiplier=1.0 / 16)
    saver = tf1.train.Saver()
    with tf1.Session() as session:
      if save:
        session.run(tf1.global_variables_initializer())
        saver.save(session, checkpoint_path, write_meta_graph=False)
      else:
        saver.restore(session, checkpoint_path)
      return session.run([outputs['box_offsets'], outputs['class_logits']], {images: images_value})


# Runs the NCHW model in its own process: TF 2.15's oneDNN max-pool primitive cache ignores the
# data format, so NHWC and NCHW pools of one shape in one process can mix up (net/layers.py).
_NCHW_WORKER = """
import sys
import numpy as np
import tensorflow as tf
tf.compat.v1.disable_eager_execution()
from tests import test_ssd_net
architecture, images_path, checkpoint_path, output_path = sys.argv[1:]
outputs = test_ssd_net._run_small_model(architecture, 'NCHW', np.load(images_path),
                                        checkpoint_path, save=False)
np.save(output_path, np.concatenate([outputs[0], outputs[1]], axis=-1))
"""


@pytest.mark.kernel_paths('1')
@pytest.mark.parametrize('architecture', ['ssd300', 'ssd512'])
def test_nhwc_checkpoint_restores_into_nchw_with_the_same_outputs(tmp_path, architecture,
                                                                  kernel_path):
  # NCHW convolutions and pooling run on a CPU with oneDNN only (and on GPUs); without it,
  # training and evaluation refuse NCHW at start-up (test_kernel_support.py). The ssd512 case
  # also covers conv12_2's explicit padding in both layouts.
  images_value = np.random.RandomState(2).uniform(
      -120, 150, [2, SMALL_IMAGE, SMALL_IMAGE, 3]).astype(np.float32)
  checkpoint_path = str(tmp_path / 'model.ckpt')
  nhwc = _run_small_model(architecture, 'NHWC', images_value, checkpoint_path, save=True)
  nhwc = np.concatenate(nhwc, axis=-1)  # [batch, num_anchors, 4 + 5]
  np.save(str(tmp_path / 'images.npy'), images_value)
  repo_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  subprocess.run([sys.executable, '-c', _NCHW_WORKER, architecture, str(tmp_path / 'images.npy'),
                  checkpoint_path, str(tmp_path / 'nchw.npy')], cwd=repo_root, check=True,
                 env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))
  nchw = np.load(str(tmp_path / 'nchw.npy'))
  assert nhwc.shape == nchw.shape == (2, 6766 if architecture == 'ssd300' else 6800, 9)
  scale = np.abs(nhwc).max()
  assert scale > 1e-2  # Non-trivial outputs.
  np.testing.assert_allclose(nchw, nhwc, rtol=1e-4, atol=1e-4 * scale)


def test_extra_batch_norm_replaces_biases_and_registers_updates():
  with tf.Graph().as_default():
    _build('ssd300', SSD300_ANCHORS, 300, extra_batch_norm=True, is_training=True)
    names = {v.op.name for v in tf1.global_variables()}
    update_ops = tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)
  assert 'ssd300/extra_layers/conv8_1/biases' not in names
  assert {'ssd300/extra_layers/conv8_1/BatchNorm/' + n for n in
          ('beta', 'gamma', 'moving_mean', 'moving_variance')} <= names
  assert 'ssd300/vgg_16/conv1/conv1_1/biases' in names  # The backbone stays as in the reference.
  assert len(update_ops) == 2 * 8  # Mean and variance of 8 extra convolutions.


@pytest.mark.parametrize('data_format', ['NHWC', 'NCHW'])
def test_batch_normalization_matches_numpy_and_updates_moving_averages(data_format):
  rng = np.random.RandomState(3)
  x = (rng.randn(4, 3, 3, 2) * [2.0, 0.5] + [1.0, -3.0]).astype(np.float32)  # NHWC

  def fn(inputs):
    if data_format == 'NCHW':
      inputs = tf.transpose(inputs, [0, 3, 1, 2])
    outputs = layers.batch_normalization(inputs, data_format, is_training=True)
    if data_format == 'NCHW':
      outputs = tf.transpose(outputs, [0, 2, 3, 1])
    with tf.control_dependencies(tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)):
      moving_mean = tf.identity(
          [v for v in tf1.global_variables() if 'moving_mean' in v.name][0].read_value())
    return outputs, moving_mean

  outputs, moving_mean = execute(fn, x)
  mean, variance = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
  np.testing.assert_allclose(outputs, (x - mean) / np.sqrt(variance + 1e-3), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(moving_mean, 0.01 * mean, rtol=1e-5)


@pytest.mark.parametrize('padding, expected', [
    # Caffe pad 1: cell (i, j) is centred on input (2i, 2j); rows/cols -1..1 and 1..3.
    (1, [[0 + 1 + 4 + 5, 1 + 2 + 3 + 5 + 6 + 7],
         [4 + 5 + 8 + 9 + 12 + 13, 5 + 6 + 7 + 9 + 10 + 11 + 13 + 14 + 15]]),
    # TF 'SAME' on an even input: 0 before, 1 after; centred on (2i + 1, 2j + 1).
    ('SAME', [[0 + 1 + 2 + 4 + 5 + 6 + 8 + 9 + 10, 2 + 3 + 6 + 7 + 10 + 11],
              [8 + 9 + 10 + 12 + 13 + 14, 10 + 11 + 14 + 15]]),
])
def test_strided_padding_hand_computed(padding, expected):
  # A 3x3 stride-2 convolution of ones on the 4x4 image 0..15.
  def fn(x):
    # The kernel takes the enclosing scope's initializer (as the recipe's xavier does).
    with tf1.variable_scope('net', initializer=tf1.ones_initializer()):
      return layers.conv2d(x, 1, 3, 'conv', stride=2, padding=padding, activation=None)

  out = execute(fn, np.arange(16, dtype=np.float32).reshape([1, 4, 4, 1]))
  np.testing.assert_array_equal(out[0, :, :, 0], expected)


def test_caffe_padding_moves_conv9_2_and_nothing_before_it():
  # One set of weights, both paddings. fc7 (19, odd) -> conv8_2: 'SAME' pads 1 + 1 there, like
  # Caffe; conv8_2 (10, even) -> conv9_2: 'SAME' pads 0 + 1, so conv9_2 and after differ.
  images_value = np.random.RandomState(4).uniform(-120, 150, [1, 300, 300, 3]).astype(np.float32)
  results = {}
  with tf.Graph().as_default():
    images = tf1.placeholder(tf.float32, [None, 300, 300, 3])
    counts = []
    for padding in ('caffe', 'same'):
      with tf1.variable_scope('', reuse=tf1.AUTO_REUSE):
        outputs = ssd_net.build_ssd(images, 'ssd300', 21, SSD300_ANCHORS, width_multiplier=0.125,
                                    extra_layer_padding=padding)
      results[padding] = outputs['feature_maps']
      counts.append(len(tf1.global_variables()))
    assert counts[0] == counts[1]  # the second model reuses the first one's variables
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      caffe, same = session.run([results['caffe'], results['same']], {images: images_value})
  assert [m.shape[1] for m in caffe] == [m.shape[1] for m in same] == [38, 19, 10, 5, 3, 1]
  for index in range(3):  # conv4_3, fc7, conv8_2
    np.testing.assert_array_equal(caffe[index], same[index])
  for index in range(3, 6):  # conv9_2, conv10_2, conv11_2
    assert np.abs(caffe[index] - same[index]).max() > 1e-3 * np.abs(same[index]).max()


def test_ssd512_strided_blocks_all_use_one_pixel_of_padding():
  blocks = {b.name: b for b in ssd_net.ARCHITECTURES['ssd512'].extra_blocks}
  assert [(blocks[n].stride, blocks[n].padding) for n in ('conv8', 'conv9', 'conv10', 'conv11')] \
      == [(2, 1)] * 4
  assert (blocks['conv12'].kernel_size, blocks['conv12'].padding) == (4, 1)
  assert ssd_net._block_padding(blocks['conv9'], 'same') == 'SAME'
  assert ssd_net._block_padding(blocks['conv12'], 'same') == 1  # not strided: as before
  with pytest.raises(ValueError, match="extra_layer_padding must be one of caffe, same"):
    ssd_net._block_padding(blocks['conv9'], 'tf')
