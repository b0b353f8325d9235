"""net/winograd.py against a numpy convolution (outputs and gradients), its layer choice, its
kernel cache, and the SSD network (inference outputs, training gradients), SavedModel and
kernel_support choice built with it."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from net import export
from net import kernel_support
from net import layers
from net import model_spec
from net import winograd
from tests.conftest import tiny_config, train_tiny
from tests.test_export import _estimator_predictions, _run_in_fresh_process, _val_records
from tests.test_export import PREDICTION_KEYS
from utility import checkpoint
from utility import config as config_lib

tf1 = tf.compat.v1


def numpy_conv3x3(inputs, kernel, padding):
  """Direct 'VALID' 3x3 convolution of inputs zero-padded by `padding`, in float64."""
  padded = np.pad(inputs.astype(np.float64), [(0, 0), (padding, padding), (padding, padding),
                                              (0, 0)])
  out_h, out_w = padded.shape[1] - 2, padded.shape[2] - 2
  outputs = np.zeros(inputs.shape[:1] + (out_h, out_w, kernel.shape[-1]))
  for dy in range(3):
    for dx in range(3):
      outputs += np.einsum('nhwc,ck->nhwk', padded[:, dy:dy + out_h, dx:dx + out_w],
                           kernel[dy, dx].astype(np.float64))
  return outputs


def _winograd_conv(inputs, kernel, padding):
  with tf.Graph().as_default():
    outputs = winograd.conv3x3(tf.constant(inputs), winograd.transform_kernel(
        tf.constant(kernel)), padding)
    with tf1.Session() as session:
      return session.run(outputs)


@pytest.mark.parametrize('height,width,padding', [(9, 11, 1), (9, 11, 0), (8, 8, 1), (6, 14, 0)])
def test_winograd_matches_a_numpy_convolution(height, width, padding):
  # Sizes that are and are not whole 4 x 4 output tiles (9 x 11 with padding 1: 3 x 3 tiles,
  # cut to 9 x 11; 6 x 14 valid: 4 x 12 = exactly 1 x 3 tiles).
  rng = np.random.RandomState(0)
  inputs = rng.uniform(-1, 1, [2, height, width, 3]).astype(np.float32)
  kernel = rng.uniform(-1, 1, [3, 3, 3, 5]).astype(np.float32)
  result = _winograd_conv(inputs, kernel, padding)
  expected = numpy_conv3x3(inputs, kernel, padding)
  assert result.shape == (2, height + 2 * padding - 2, width + 2 * padding - 2, 5)
  np.testing.assert_allclose(result, expected, atol=2e-5)


def test_a_single_pixel_kernel_tap_shifts_the_image():
  # Only the kernel's bottom-right tap is 1: output(y, x) = input(y + 1, x + 1), zero past the
  # edge (padding 1) - exact positions, independent of rounding.
  inputs = np.arange(2 * 7 * 9, dtype=np.float32).reshape(1, 7, 9, 2) / 100
  kernel = np.zeros([3, 3, 2, 1], np.float32)
  kernel[2, 2, 1, 0] = 1.0
  result = _winograd_conv(inputs, kernel, 1)[0, :, :, 0]
  expected = np.zeros([7, 9], np.float32)
  expected[:6, :8] = inputs[0, 1:, 1:, 1]
  np.testing.assert_allclose(result, expected, atol=1e-5)


def test_kernel_transform_of_an_all_ones_kernel():
  # G 1 1^T G^T = r r^T with r = the row sums of G: 1/4, -1/2, -1/6, 7/24, 1/8, 1.
  with tf.Graph().as_default(), tf1.Session() as session:
    transformed = session.run(winograd.transform_kernel(tf.ones([3, 3, 1, 1])))
  rows = np.array([1 / 4, -1 / 2, -1 / 6, 7 / 24, 1 / 8, 1])
  assert transformed.shape == (36, 1, 1)
  np.testing.assert_allclose(transformed[:, 0, 0], np.outer(rows, rows).ravel(), rtol=1e-6)


@pytest.mark.parametrize('kernel_shape,output_size,stride,dilation,dtype,expected', [
    ([3, 3, 128, 256], (75, 75), 1, 1, tf.float32, True),     # VGG16 conv3_1
    ([3, 3, 512, 512], (19, 19), 1, 1, tf.float32, True),     # conv5_x
    ([3, 3, 64, 128], (150, 150), 1, 1, tf.float32, True),    # conv2_1
    ([3, 3, 64, 64], (300, 300), 1, 1, tf.float32, False),    # conv1_2: measured slower
    ([3, 3, 32, 128], (150, 150), 1, 1, tf.float32, False),   # under 64 in
    ([3, 3, 512, 512], (38, 38), 2, 1, tf.float32, False),    # strided
    ([3, 3, 512, 512], (38, 38), 1, 6, tf.float32, False),    # dilated
    ([3, 3, 512, 512], (38, 38), 1, 1, tf.bfloat16, False),   # transforms need float32
    ([3, 3, 128, 256], (7, 7), 1, 1, tf.float32, False),      # under 8 x 8: mostly padding
    ([1, 1, 512, 512], (38, 38), 1, 1, tf.float32, False),
])
def test_applies_to_the_layers_measured_faster(kernel_shape, output_size, stride, dilation,
                                               dtype, expected):
  assert winograd.applies(kernel_shape, output_size, stride, dilation, dtype) is expected


def test_cached_kernel_is_a_local_variable_computed_from_the_kernel():
  with tf.Graph().as_default():
    kernel = tf1.get_variable('weights', [3, 3, 2, 4],
                              initializer=tf1.random_uniform_initializer(-1, 1, seed=1))
    cached = winograd.cached_transformed_kernel(kernel.read_value())
    assert [v.op.name for v in tf1.local_variables()] == ['winograd_weights']
    assert [v.op.name for v in tf1.global_variables()] == ['weights']
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      with pytest.raises(tf.errors.FailedPreconditionError, match='winograd_weights'):
        session.run(cached)
      session.run(kernel.assign(tf.fill([3, 3, 2, 4], 2.0)))  # as a restore would
      session.run(tf1.local_variables_initializer())
      transformed = session.run(cached)
  rows = 2 * np.array([1 / 4, -1 / 2, -1 / 6, 7 / 24, 1 / 8, 1])
  np.testing.assert_allclose(transformed[:, 1, 3], np.outer(rows, rows / 2).ravel(), rtol=1e-6)


def _network_outputs(model_config, checkpoint_dir, images, save):
  """class_logits and box_offsets of an inference graph; save (or restore) its weights."""
  with tf.Graph().as_default():
    tf1.set_random_seed(3)
    net = model_spec.build_network(tf.constant(images), model_config, is_training=False)
    local_names = [v.op.name for v in tf1.local_variables()]
    saver = tf1.train.Saver(tf1.global_variables())
    with tf1.Session() as session:
      if save:
        session.run(tf1.global_variables_initializer())
        saver.save(session, checkpoint_dir + '/model')
      else:
        saver.restore(session, checkpoint_dir + '/model')
      session.run(tf1.local_variables_initializer())
      return session.run([net['class_logits'], net['box_offsets']]), local_names


def test_ssd300_half_width_equals_the_direct_network(tmp_path):
  # SSD300 at width 0.5: conv3_1 (64 -> 128), conv3_2, conv3_3, conv4_1-3 (128 -> 256, 256 ->
  # 256), conv5_1-3 take Winograd; conv1-conv2 (at most 64 channels), the strided extras and
  # the heads (at most 126 outputs) do not.
  config = config_lib.ModelConfig(architecture='ssd300', image_size=300, width_multiplier=0.5,
                                  compute_dtype='float32', conv_algorithm='direct')
  images = np.random.RandomState(0).uniform(-120, 120, [1, 300, 300, 3]).astype(np.float32)
  (direct_logits, direct_offsets), none = _network_outputs(config, str(tmp_path), images, True)
  winograd_config = dataclasses.replace(config, conv_algorithm='winograd')
  (logits, offsets), cached = _network_outputs(winograd_config, str(tmp_path), images, False)
  assert none == []
  assert cached == ['ssd300/vgg_16/conv%d/conv%d_%d/winograd_weights' % (block, block, i)
                    for block in (3, 4, 5) for i in (1, 2, 3)]
  scale = np.abs(direct_logits).max()
  assert scale > 1.0
  np.testing.assert_allclose(logits, direct_logits, atol=1e-4 * scale)
  np.testing.assert_allclose(offsets, direct_offsets, atol=1e-4 * np.abs(direct_offsets).max())


def test_the_model_config_sets_the_algorithm_of_every_graph():
  config = config_lib.ModelConfig(conv_algorithm='winograd')
  assert model_spec.convolution_algorithm(config) == 'winograd'
  assert model_spec.convolution_algorithm(
      dataclasses.replace(config, conv_algorithm='direct')) == 'direct'
  # Unresolved: kernel_support decides 'auto' per machine before a graph is built.
  assert model_spec.convolution_algorithm(
      dataclasses.replace(config, conv_algorithm='auto')) == 'direct'
  with pytest.raises(ValueError, match='convolution algorithm must be one of direct, winograd'):
    with layers.convolution_algorithm('fft'):
      pass


@pytest.mark.parametrize('padding', [1, 0])
def test_winograd_gradients_match_a_numpy_convolution(padding):
  # 10 x 9 with padding 1: 3 x 3 tiles, the last ones cut; 10 x 14 valid: 2 x 3 whole tiles.
  rng = np.random.RandomState(1)
  inputs = rng.uniform(-1, 1, [2, 10, 9 + 5 * (1 - padding), 3]).astype(np.float32)
  kernel = rng.uniform(-1, 1, [3, 3, 3, 4]).astype(np.float32)
  out_h, out_w = inputs.shape[1] + 2 * padding - 2, inputs.shape[2] + 2 * padding - 2
  upstream = rng.uniform(-1, 1, [2, out_h, out_w, 4]).astype(np.float32)
  with tf.Graph().as_default():
    inputs_t, kernel_t = tf.constant(inputs), tf.constant(kernel)
    outputs = winograd.conv3x3(inputs_t, winograd.transform_kernel(kernel_t), padding)
    loss = tf.reduce_sum(outputs * upstream)
    with tf1.Session() as session:
      input_grad, kernel_grad = session.run(tf.gradients(loss, [inputs_t, kernel_t]))
  # d loss / d kernel[dy, dx, c, k] = sum of padded input (y + dy, x + dx, c) * upstream (y, x, k);
  # d loss / d input = the adjoint: each upstream pixel spread back over its 3 x 3 window.
  padded = np.pad(inputs.astype(np.float64), [(0, 0), (padding, padding), (padding, padding),
                                              (0, 0)])
  expected_kernel = np.zeros([3, 3, 3, 4])
  expected_padded = np.zeros_like(padded)
  for dy in range(3):
    for dx in range(3):
      window = (slice(None), slice(dy, dy + out_h), slice(dx, dx + out_w))
      expected_kernel[dy, dx] = np.einsum('nhwc,nhwk->ck', padded[window], upstream)
      expected_padded[window] += np.einsum('nhwk,ck->nhwc', upstream, kernel[dy, dx])
  expected_input = expected_padded[:, padding:padding + inputs.shape[1],
                                   padding:padding + inputs.shape[2]]
  np.testing.assert_allclose(kernel_grad, expected_kernel, atol=1e-4)
  np.testing.assert_allclose(input_grad, expected_input, atol=2e-5)


def _training_gradients(model_config, images, weights):
  """Gradients of sum(logits * weights) over every trainable variable of a training graph, the
  graph's local variables (its Winograd kernel caches, if any) and its Winograd layer count."""
  with tf.Graph().as_default():
    tf1.set_random_seed(3)
    net = model_spec.build_network(tf.constant(images), model_config, is_training=True)
    loss = tf.reduce_sum(net['class_logits'] * weights) + tf.reduce_sum(net['box_offsets'])
    variables = tf1.trainable_variables()
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      gradients = session.run(tf.gradients(loss, variables))
    # Each Winograd layer's 36 products over the tiles: one BatchMatMulV2 in the forward pass.
    products = [op.name for op in tf1.get_default_graph().get_operations()
                if op.type == 'BatchMatMulV2' and not op.name.startswith('gradients')]
    return ({v.op.name: g for v, g in zip(variables, gradients)},
            [v.op.name for v in tf1.local_variables()], len(products))


def test_ssd300_training_gradients_equal_the_direct_network():
  # The training graph at width 0.5 (conv3_1-conv5_3 take Winograd): no kernel caches (the
  # kernels change every step), and every variable's gradient within float32 rounding of the
  # direct convolutions' - the Winograd layers' kernels included.
  config = config_lib.ModelConfig(architecture='ssd300', image_size=300, width_multiplier=0.5,
                                  compute_dtype='float32', conv_algorithm='direct')
  rng = np.random.RandomState(0)
  images = rng.uniform(-120, 120, [1, 300, 300, 3]).astype(np.float32)
  weights = rng.uniform(-1, 1, [1, 8732, 21]).astype(np.float32)
  direct, _, none = _training_gradients(config, images, weights)
  winograd_grads, local_names, winograd_layers = _training_gradients(
      dataclasses.replace(config, conv_algorithm='winograd'), images, weights)
  assert (none, winograd_layers) == (0, 9)
  assert local_names == []
  assert sorted(winograd_grads) == sorted(direct)
  assert 'ssd300/vgg_16/conv4/conv4_1/weights' in direct
  for name, expected in direct.items():
    scale = np.abs(expected).max()
    assert scale > 0, name
    np.testing.assert_allclose(winograd_grads[name], expected, atol=2e-4 * scale, err_msg=name)


def test_estimator_training_with_winograd_takes_the_direct_step(tiny_records, tmp_path,
                                                                  monkeypatch):
  # Every 3x3 stride-1 layer of the tiny model on 8 x 8 or more takes Winograd; one SGD step
  # through the Estimator (model_fn, loss, optimizer, checkpoint) lands on the weights the direct
  # convolutions' step gives, and the checkpoint holds the same variables (no kernel caches).
  monkeypatch.setattr(winograd, 'MIN_IN_DEPTH', 1)
  monkeypatch.setattr(winograd, 'MIN_OUT_DEPTH', 1)
  weights = {}
  for algorithm in ('direct', 'winograd'):
    config = tiny_config(max_number_of_steps=1, optimizer='sgd', learning_rate=0.01)
    config = config_lib.override_model(config, conv_algorithm=algorithm,
                                       compute_dtype='float32')
    # Without the zoom-out: its canvas is exactly 0 after the mean is subtracted, where the
    # direct convolutions give exactly 0 (ReLU passes no gradient at 0, the biases start at 0)
    # and Winograd +-1e-7 (half of it passes), a difference of the first step only.
    config = dataclasses.replace(config, input=dataclasses.replace(config.input,
                                                                   expand_probability=0.0))
    model_dir = str(tmp_path / algorithm)
    assert train_tiny(config, tiny_records['records'], model_dir) == 1
    reader = tf1.train.load_checkpoint(model_dir)
    weights[algorithm] = {name: reader.get_tensor(name)
                          for name in reader.get_variable_to_shape_map()
                          if name.endswith(('weights', 'biases'))}
  assert sorted(weights['winograd']) == sorted(weights['direct'])
  assert not [name for name in weights['winograd'] if 'winograd' in name]
  moved = 0
  for name, expected in weights['direct'].items():
    np.testing.assert_allclose(weights['winograd'][name], expected, atol=1e-5, err_msg=name)
    moved += not np.array_equal(weights['winograd'][name], expected)
  assert moved > 0  # float32 rounding differs: the Winograd graph really ran


CPU_ONEDNN = kernel_support.Machine('Test CPU', True, True, ())


@pytest.mark.parametrize('requested,data_format,dtype,machine,expected,reason', [
    ('auto', 'NHWC', 'float32', CPU_ONEDNN, 'winograd', 'oneDNN is on on this CPU (Test CPU)'),
    ('auto', 'NHWC', 'float32', CPU_ONEDNN._replace(onednn=False), 'direct', 'oneDNN is off'),
    ('auto', 'NHWC', 'float32', CPU_ONEDNN._replace(gpu_capabilities=((8, 0),)), 'direct',
     'cuDNN picks its own'),
    ('auto', 'NHWC', 'bfloat16', CPU_ONEDNN, 'direct', '--compute_dtype=bfloat16'),
    ('auto', 'NCHW', 'float32', CPU_ONEDNN, 'direct', '--data_format=NCHW'),
    ('direct', 'NHWC', 'float32', CPU_ONEDNN, 'direct', 'was asked for'),
    ('winograd', 'NHWC', 'float32', CPU_ONEDNN._replace(onednn=False), 'winograd',
     'was asked for'),
])
def test_choose_conv_algorithm(requested, data_format, dtype, machine, expected, reason):
  algorithm, why = kernel_support.choose_conv_algorithm(requested, data_format, dtype, machine)
  assert algorithm == expected
  assert reason in why


def test_choose_conv_algorithm_refuses_what_winograd_cannot_compute():
  with pytest.raises(ValueError, match=r'--conv_algorithm=winograd cannot run with '
                     r'--data_format=NCHW \(it computes NHWC only\) and --compute_dtype=bfloat16'):
    kernel_support.choose_conv_algorithm('winograd', 'NCHW', 'bfloat16', CPU_ONEDNN)
  with pytest.raises(ValueError, match='--conv_algorithm must be one of auto, direct, winograd'):
    kernel_support.choose_conv_algorithm('fast', 'NHWC', 'float32', CPU_ONEDNN)


def test_resolve_model_config_chooses_the_algorithm():
  config = config_lib.ModelConfig(compute_dtype='float32', conv_algorithm='auto')
  resolved, notes = kernel_support.resolve_model_config(
      config, training=False, machine=CPU_ONEDNN, probe_fn=lambda *args: None)
  assert resolved.conv_algorithm == 'winograd'
  assert notes[-1].startswith('--conv_algorithm=auto chose winograd')


@pytest.fixture(scope='module')
def winograd_model_dir(tiny_records, tmp_path_factory):
  model_dir = str(tmp_path_factory.mktemp('winograd_model'))
  train_tiny(tiny_config(max_number_of_steps=1), tiny_records['records'], model_dir)
  return model_dir


def test_winograd_saved_model_computes_its_cache_when_loaded(tiny_records, winograd_model_dir,
                                                            tmp_path, monkeypatch):
  # The tiny model's layers are thin: let every 3x3 stride-1 layer of 8 x 8 or more take
  # Winograd, then serve the SavedModel in a fresh process (tf.saved_model.load must run the
  # main op that fills the caches) and compare with Estimator.predict's direct convolutions.
  monkeypatch.setattr(winograd, 'MIN_IN_DEPTH', 1)
  monkeypatch.setattr(winograd, 'MIN_OUT_DEPTH', 1)
  ssd_config = config_lib.override_model(config_lib.load(winograd_model_dir),
                                         conv_algorithm='winograd')
  ssd_config = export.serving_config(ssd_config)
  assert ssd_config.model.conv_algorithm == 'winograd'
  export_dir = str(tmp_path / 'exported')
  export.export_saved_model(ssd_config, checkpoint.latest_checkpoint(winograd_model_dir),
                            export_dir)
  records = _val_records(tiny_records['records'])[:2]
  expected = _estimator_predictions(winograd_model_dir, tiny_records['records'], 2)
  served = _run_in_fresh_process(export_dir, [r[1] for r in records], tmp_path)
  with tf.Graph().as_default():
    graph_def = tf1.saved_model.loader.load(
        tf1.Session(), ['serve'], export_dir).graph_def
  names = [node.name[len('ssd_quick/'):] for node in graph_def.node
           if node.name.endswith('/winograd_weights')]
  # The 13 VGG 3x3 layers and the heads on the 20 x 20 and 10 x 10 maps; not the heads on
  # the 5 x 5 and smaller maps, nor the strided extra layers.
  vgg = ['vgg_16/conv%d/conv%d_%d' % (block, block, i)
         for block, count in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3)) for i in range(1, count + 1)]
  heads = ['%s/%s' % (head, source) for head in ('box_heads', 'class_heads')
           for source in ('conv4_3', 'fc7')]
  assert names == [name + '/winograd_weights' for name in vgg + heads]
  for key in PREDICTION_KEYS:
    np.testing.assert_allclose(served[key], np.stack([p[key] for p in expected]), atol=1e-4,
                               err_msg=key)
