"""net/layers.py: the dilated convolution (per-tap 1x1 convolutions) vs numpy and the native op."""

import numpy as np
import pytest
import tensorflow as tf

from net import layers
from net import vgg
from tests.graph_test_util import execute

tf1 = tf.compat.v1


def _numpy_atrous(x, kernel, rate, before, after):
  """Reference: out[n, i, j, d] = sum_{a, b, c} pad(x)[n, i + rate a, j + rate b, c] k[a, b, c, d].

  Returns (out float64 [n, out_h, out_w, d], the padded input).
  """
  padded = np.pad(x, [(0, 0), (before, after), (before, after), (0, 0)])
  k = kernel.shape[0]
  out_h = padded.shape[1] - rate * (k - 1)
  out_w = padded.shape[2] - rate * (k - 1)
  out = np.zeros([x.shape[0], out_h, out_w, kernel.shape[3]], np.float64)
  for a in range(k):
    for b in range(k):
      window = padded[:, a * rate:a * rate + out_h, b * rate:b * rate + out_w, :]
      out += np.einsum('nhwc,cd->nhwd', window, kernel[a, b])
  return out, padded


def test_hand_computed_rate_2_on_a_4x4_image():
  # One channel, 3x3 kernel of ones, rate 2, 'SAME' (2 zero pixels per side): output (i, j) sums
  # the taps at i-2, i, i+2 and j-2, j, j+2 that fall inside the image.
  x = np.arange(16, dtype=np.float32).reshape([1, 4, 4, 1])
  kernel = np.ones([3, 3, 1, 1], np.float32)
  out = execute(lambda x, k: layers.atrous_conv2d(x, k, 2, 'SAME'), x, kernel)[0, :, :, 0]
  # (0, 0): rows {0, 2} x cols {0, 2} -> 0 + 2 + 8 + 10 = 20.
  # (1, 1): rows {1, 3} x cols {1, 3} -> 5 + 7 + 13 + 15 = 40.
  # (0, 1): rows {0, 2} x cols {1, 3} -> 1 + 3 + 9 + 11 = 24.
  np.testing.assert_array_equal(out, [[20, 24, 20, 24], [36, 40, 36, 40],
                                      [20, 24, 20, 24], [36, 40, 36, 40]])


@pytest.mark.parametrize('height, width, kernel_size, rate, padding', [
    (19, 19, 3, 6, 'SAME'),   # fc6 of SSD300
    (12, 12, 3, 6, 'SAME'),   # fc6 of the quick model at 192
    (7, 8, 3, 2, 'SAME'),
    (10, 9, 3, 3, 'VALID'),
    (8, 5, 3, 2, 1),
    (5, 6, 2, 2, 'SAME'),     # even kernel: 'SAME' pads 1 before, 1 after
    (6, 7, 3, 4, 'SAME'),     # rate larger than half the input
    (5, 5, 3, 6, 'SAME'),     # the outer taps read only padding and are skipped
    (10, 10, 3, 6, 'SAME'),   # fc6 of the tests' tiny model (160 px)
])
def test_values_and_gradients_match_numpy(height, width, kernel_size, rate, padding):
  rng = np.random.RandomState(height * 100 + width)
  x = rng.randn(2, height, width, 3).astype(np.float32)
  kernel = rng.randn(kernel_size, kernel_size, 3, 4).astype(np.float32)
  if padding == 'SAME':
    total = (kernel_size - 1) * rate
    before, after = total // 2, total - total // 2
  else:
    before = after = 0 if padding == 'VALID' else padding
  expected, padded = _numpy_atrous(x.astype(np.float64), kernel.astype(np.float64), rate,
                                   before, after)
  upstream = rng.randn(*expected.shape).astype(np.float32)

  def fn(x_t, k_t, g_t):
    out = layers.atrous_conv2d(x_t, k_t, rate, padding)
    return [out] + tf.gradients(out, [k_t], grad_ys=g_t)

  out, kernel_grad = execute(fn, x, kernel, upstream)
  np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
  # dL/dk[a, b, c, d] = sum_{n, i, j} pad(x)[n, i + rate a, j + rate b, c] * g[n, i, j, d].
  expected_grad = np.zeros_like(kernel, np.float64)
  out_h, out_w = expected.shape[1:3]
  for a in range(kernel_size):
    for b in range(kernel_size):
      window = padded[:, a * rate:a * rate + out_h, b * rate:b * rate + out_w, :]
      expected_grad[a, b] = np.einsum('nhwc,nhwd->cd', window, upstream)
  np.testing.assert_allclose(kernel_grad, expected_grad, rtol=1e-4, atol=1e-3)


def test_forward_equals_the_native_dilated_op():
  # The native op's forward pass runs on every CPU (only its filter gradient does not), so
  # outputs are compared here directly: the new path computes what checkpoints were trained on.
  rng = np.random.RandomState(5)
  x = rng.randn(2, 19, 19, 16).astype(np.float32)
  kernel = rng.randn(3, 3, 16, 8).astype(np.float32)
  ours, native = execute(lambda x, k: (
      layers.atrous_conv2d(x, k, 6, 'SAME'),
      tf.nn.conv2d(x, k, 1, 'SAME', dilations=[1, 6, 6, 1])), x, kernel)
  np.testing.assert_allclose(ours, native, rtol=1e-5, atol=1e-4)


def test_fc6_keeps_its_variables_and_sizes():
  # Same variables as before the change (a [3, 3, 512, 1024] kernel): old checkpoints load.
  with tf.Graph().as_default():
    end_points = vgg.vgg16_reduced_fc(tf1.placeholder(tf.float32, [None, 300, 300, 3]))
    shapes = {v.op.name: v.shape.as_list() for v in tf1.global_variables()}
  assert shapes['vgg_16/fc6/weights'] == [3, 3, 512, 1024]
  assert shapes['vgg_16/fc6/biases'] == [1024]
  assert end_points['fc6'].shape.as_list() == [None, 19, 19, 1024]
  # No native dilated convolution is left in the graph.
  with tf.Graph().as_default() as graph:
    vgg.vgg16_reduced_fc(tf1.placeholder(tf.float32, [None, 300, 300, 3]))
    dilated = [op.name for op in graph.get_operations() if op.type == 'Conv2D'
               and list(op.get_attr('dilations')) != [1, 1, 1, 1]]
  assert dilated == []


def test_bad_arguments_are_named():
  with tf.Graph().as_default():
    with pytest.raises(ValueError, match='too small for a 3x3 kernel at rate 6'):
      layers.atrous_conv2d(tf.zeros([1, 10, 10, 2]), tf.zeros([3, 3, 2, 2]), 6, 'VALID')
    with pytest.raises(ValueError, match='static spatial size'):
      layers.atrous_conv2d(tf1.placeholder(tf.float32, [1, None, 10, 2]),
                           tf.zeros([3, 3, 2, 2]), 2)
    with pytest.raises(ValueError, match='stride 2 and dilation 2 cannot be combined'):
      layers.conv2d(tf.zeros([1, 8, 8, 2]), 4, 3, 'bad', stride=2, dilation=2)


@pytest.mark.kernel_paths('1')
@pytest.mark.parametrize('data_format', ['NHWC', 'NCHW'])
def test_gradients_equal_the_native_op_where_it_trains(data_format, kernel_path):
  # oneDNN has the native dilated filter gradient: both paths give the same numbers.
  rng = np.random.RandomState(6)
  x = rng.randn(2, 19, 19, 8).astype(np.float32)
  kernel = rng.randn(3, 3, 8, 4).astype(np.float32)

  def fn(x_t, k_t):
    if data_format == 'NCHW':
      x_t = tf.transpose(x_t, [0, 3, 1, 2])
    dilations = [1, 6, 6, 1] if data_format == 'NHWC' else [1, 1, 6, 6]
    ours = layers.atrous_conv2d(x_t, k_t, 6, 'SAME', data_format)
    native = tf.nn.conv2d(x_t, k_t, 1, 'SAME', data_format=data_format, dilations=dilations)
    loss_ours, loss_native = tf.reduce_sum(ours * ours), tf.reduce_sum(native * native)
    return ([ours, native] + tf.gradients(loss_ours, [k_t, x_t])
            + tf.gradients(loss_native, [k_t, x_t]))

  ours, native, kernel_grad, input_grad, native_kernel_grad, native_input_grad = execute(
      fn, x, kernel)
  np.testing.assert_allclose(ours, native, rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(kernel_grad, native_kernel_grad, rtol=1e-4,
                             atol=1e-4 * np.abs(native_kernel_grad).max())
  np.testing.assert_allclose(input_grad, native_input_grad, rtol=1e-4,
                             atol=1e-4 * np.abs(native_input_grad).max())


@pytest.mark.parametrize('name, limit', [('xavier', np.sqrt(3.0 / 144)),            # Caffe
                                         ('glorot', np.sqrt(6.0 / (144 + 36)))])
def test_kernel_initializers_draw_uniform_with_their_limit(name, limit):
  # A 3x3 convolution from 16 to 4 channels: fan_in 144, fan_out 36.
  with tf.Graph().as_default():
    with tf1.variable_scope('model', initializer=layers.kernel_initializer(name)):
      layers.conv2d(tf.zeros([1, 5, 5, 16]), 4, 3, scope='conv')
    kernel = [v for v in tf1.global_variables() if v.op.name == 'model/conv/weights'][0]
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      values = sess.run(kernel)
  assert values.shape == (3, 3, 16, 4)
  assert np.abs(values).max() <= limit
  assert np.abs(values).max() >= 0.95 * limit
  np.testing.assert_allclose(values.std(), limit / np.sqrt(3.0), rtol=0.1)


def test_ssd_kernels_default_to_caffes_xavier_filler():
  from net import ssd_net
  with tf.Graph().as_default():
    ssd_net.build_ssd(tf.zeros([1, 192, 192, 3]), 'ssd_quick', 21, [4, 6, 6, 6, 4],
                      width_multiplier=0.25)
    kernels = {v.op.name: v for v in tf1.global_variables() if v.op.name.endswith('/weights')}
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      values = sess.run(kernels)
  assert len(values) > 10
  for name, value in values.items():
    fan_in = np.prod(value.shape[:3])
    assert np.abs(value).max() <= np.sqrt(3.0 / fan_in) * (1 + 1e-6), name
  # A class head, 3x3 from 256 to 6 x 21 = 126 channels: fan_in 2,304, fan_out 1,134.
  # Xavier's limit sqrt(3 / 2304) = 0.0361 is reached; Glorot's would be 0.0418.
  head = [v for n, v in values.items() if 'class_heads' in n and v.shape == (3, 3, 256, 126)][0]
  assert 0.95 * 0.0361 <= np.abs(head).max() <= 0.03609


def test_unknown_weight_init_is_refused_before_training():
  from net import validation
  from utility import config as config_lib
  bad = config_lib.SSDConfig(train=config_lib.TrainConfig(weight_init='he'))
  with pytest.raises(ValueError, match=r"--weight_init must be one of xavier, glorot, got 'he'\."):
    validation.validate(bad)


def test_the_strided_stem_is_one_stride_2_convolution_in_place_of_conv1_and_pool1():
  """--stem=strided: conv1_1 with stride 2 ('SAME': on an even input no pad at the top/left, one
  row/column at the bottom/right), no conv1_2, no pool1; every later layer as the reference."""
  with tf.Graph().as_default():
    images = tf1.placeholder(tf.float32, [None, 192, 192, 3])
    with tf1.variable_scope('reference'):
      reference = vgg.vgg16_reduced_fc(images, width_multiplier=0.25, batch_norm=True)
    with tf1.variable_scope('strided'):
      strided = vgg.vgg16_reduced_fc(images, width_multiplier=0.25, batch_norm=True,
                                     stem='strided')
    shapes = {v.op.name: v.shape.as_list() for v in tf1.global_variables()}
  assert strided['conv1_1'].shape.as_list() == [None, 96, 96, 16]
  assert strided['pool1'] is strided['conv1_1'] and 'conv1_2' not in strided
  assert sorted(reference) == sorted(list(strided) + ['conv1_2'])
  for name in strided:
    if name != 'conv1_1':
      assert strided[name].shape.as_list() == reference[name].shape.as_list(), name
  assert strided['conv4_3'].shape.as_list() == [None, 24, 24, 128]
  reference_names = {n[len('reference/'):]: s for n, s in shapes.items()
                     if n.startswith('reference/')}
  strided_names = {n[len('strided/'):]: s for n, s in shapes.items() if n.startswith('strided/')}
  assert {n: s for n, s in reference_names.items()
          if not n.startswith('vgg_16/conv1/conv1_2/')} == strided_names
  with pytest.raises(ValueError, match="VGG16 has no stem 'patchify': use one of reference, "
                                       'strided.'):
    with tf.Graph().as_default():
      vgg.vgg16_reduced_fc(tf1.placeholder(tf.float32, [None, 64, 64, 3]), stem='patchify')


def test_the_strided_stem_computes_a_stride_2_convolution_with_relu():
  rng = np.random.RandomState(3)
  x = rng.uniform(-1, 1, [1, 8, 8, 3]).astype(np.float32)
  with tf.Graph().as_default():
    end_points = vgg.vgg16_reduced_fc(tf.constant(x), width_multiplier=1 / 16, stem='strided')
    kernel = [v for v in tf1.global_variables() if v.op.name == 'vgg_16/conv1/conv1_1/weights'][0]
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      out, k = sess.run([end_points['conv1_1'], kernel])
  padded = np.pad(x, [(0, 0), (0, 1), (0, 1), (0, 0)])  # 'SAME', even input, stride 2
  expected = np.zeros([1, 4, 4, 8])
  for i in range(4):
    for j in range(4):
      expected[0, i, j] = np.einsum('abc,abcd->d', padded[0, 2 * i:2 * i + 3, 2 * j:2 * j + 3],
                                    k)
  np.testing.assert_allclose(out, np.maximum(expected, 0), atol=1e-5)  # biases start at 0
