"""MobileNet V1/V2 backbones: shapes, Keras names, and Keras .h5 weights loaded exactly."""

import logging

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.eager import context

from net import backbones
from net import mobilenet_v1
from net import mobilenet_v2
from net import ssd_net
from net import validation
from utility import checkpoint
from utility import config as config_lib

tf1 = tf.compat.v1

# Keras layer whose output is each source (the activation after the convolution).
KERAS_SOURCE_LAYERS = {
    'mobilenet_v1': ['conv_pw_11_relu', 'conv_pw_13_relu'],
    'mobilenet_v2': ['block_13_expand_relu', 'out_relu'],
}
MODULES = {'mobilenet_v1': mobilenet_v1, 'mobilenet_v2': mobilenet_v2}


def _keras_model(name, alpha, size):
  application = {'mobilenet_v1': tf.keras.applications.MobileNet,
                 'mobilenet_v2': tf.keras.applications.MobileNetV2}[name]
  return application(weights=None, include_top=False, input_shape=(size, size, 3), alpha=alpha)


def _keras_reference(name, alpha, size, images, path):
  """Writes the weights of a Keras model (batch-norm statistics randomised) to path and
  returns its source activations for images and its parameter count.

  Eagerly (the tests otherwise run in graph mode, tests/conftest.py): in a graph every Keras
  set_weights and every layer's read in save_weights is a session run on a new fetch, which made
  this 20-80 s for MobileNetV2 against about 2 s."""
  with context.eager_mode():
    model = _keras_model(name, alpha, size)
    rng = np.random.RandomState(1)
    for layer in model.layers:
      if isinstance(layer, tf.keras.layers.BatchNormalization):
        gamma, beta, mean, variance = layer.get_weights()
        layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.1, beta.shape),
                           rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 1.5, variance.shape)])
    model.save_weights(path)
    outputs = [model.get_layer(layer).output for layer in KERAS_SOURCE_LAYERS[name]]
    # Keras applications preprocess_input(mode='tf'); inference mode (the moving statistics).
    reference = tf.keras.Model(model.input, outputs)(images / 127.5 - 1.0, training=False)
    return [np.asarray(r) for r in reference], model.count_params()


def _ours(name, alpha, images, path):
  module = MODULES[name]
  with tf.Graph().as_default():
    inputs = tf1.placeholder(tf.float32, [None] + list(images.shape[1:]))
    with tf1.variable_scope('model'):
      sources = module.BACKBONE.build(module.CONVENTION.normalize(inputs),
                                      backbones.BuildOptions('NHWC', alpha, False, True))
    num_parameters = sum(int(np.prod(v.shape)) for v in tf1.global_variables())
    num_variables = len(tf1.global_variables())
    init_fn = module.init_from_checkpoint(path, 'model', None, config_lib.TrainConfig())
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      init_fn(None, session)
      return (list(sources), session.run(list(sources.values()), {inputs: images}),
              num_parameters, num_variables)


@pytest.mark.parametrize('name, alpha, source_names, depths', [
    ('mobilenet_v1', 0.25, ['conv_pw_11', 'conv_pw_13'], [128, 256]),
    ('mobilenet_v2', 0.35, ['block_13_expand', 'Conv_1'], [192, 1280]),
])
def test_keras_h5_weights_give_the_keras_activations(name, alpha, source_names, depths,
                                                     tmp_path, caplog):
  images = np.random.RandomState(0).uniform(0, 255, [2, 96, 96, 3]).astype(np.float32)
  path = str(tmp_path / 'weights.h5')
  reference, keras_parameters = _keras_reference(name, alpha, 96, images, path)
  with caplog.at_level(logging.INFO):
    names, ours, num_parameters, num_variables = _ours(name, alpha, images, path)
  assert names == source_names
  # The restore report: every variable restored (the Keras model has nothing else), none unused.
  assert ('Warm start from %s: %d variables restored, 0 skipped (shape mismatch), 0 missing '
          '(freshly initialised), 0 checkpoint tensors unused.' % (path, num_variables)
          in [r.getMessage() for r in caplog.records])
  assert num_parameters == keras_parameters  # every Keras weight has its variable
  for got, want, depth in zip(ours, reference, depths):
    assert got.shape == want.shape and got.shape[-1] == depth
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert np.abs(want).max() > 0.1  # the comparison is not between zeros


def test_a_weight_file_of_another_width_fails_naming_the_file_and_the_weight(tmp_path):
  # Widths 0.5 and 0.35 agree up to block_1_project: 24 * 0.5 -> 16 channels, 24 * 0.35 -> 8.
  path = str(tmp_path / 'alpha_0.5.h5')
  with context.eager_mode():  # fast, as in _keras_reference
    _keras_model('mobilenet_v2', 0.5, 96).save_weights(path)
  with tf.Graph().as_default():
    with tf1.variable_scope('model'):
      mobilenet_v2.BACKBONE.build(tf.zeros([1, 96, 96, 3]),
                                  backbones.BuildOptions('NHWC', 0.35, False, True))
    with pytest.raises(checkpoint.CheckpointError,
                       match=r"alpha_0.5.h5' has block_1_project/kernel with shape "
                             r'\[1, 1, 48, 16\], expected \[1, 1, 48, 8\] for '
                             r'model/mobilenet_v2/block_1_project/weights \(is the width'):
      mobilenet_v2.init_from_checkpoint(path, 'model', None, config_lib.TrainConfig())
    with pytest.raises(checkpoint.CheckpointError, match='No Keras weight file at'):
      mobilenet_v2.init_from_checkpoint(str(tmp_path / 'missing.h5'), 'model', None,
                                        config_lib.TrainConfig())


def test_keras_names_of_the_variables():
  assert mobilenet_v1.keras_name('conv1/weights') == 'conv1/kernel'
  assert mobilenet_v1.keras_name('conv_dw_3/depthwise_weights') == 'conv_dw_3/depthwise_kernel'
  assert mobilenet_v1.keras_name('conv_pw_13/BatchNorm/moving_variance') == (
      'conv_pw_13_bn/moving_variance')
  assert mobilenet_v2.keras_name('Conv1/BatchNorm/gamma') == 'bn_Conv1/gamma'
  assert mobilenet_v2.keras_name('expanded_conv_depthwise/BatchNorm/beta') == (
      'expanded_conv_depthwise_BN/beta')
  assert mobilenet_v2.keras_name('block_16_project/weights') == 'block_16_project/kernel'
  assert mobilenet_v2.keras_name('Conv_1/BatchNorm/moving_mean') == 'Conv_1_bn/moving_mean'


def test_channel_rounding_of_the_references():
  # Keras MobileNet: int(depth * alpha); MobileNetV2: nearest multiple of 8, not 10% below.
  assert mobilenet_v1.scaled_depth(32, 0.25) == 8 and mobilenet_v1.scaled_depth(1024, 0.75) == 768
  assert mobilenet_v2.make_divisible(32 * 0.35) == 16
  assert mobilenet_v2.make_divisible(24 * 0.35) == 8
  assert mobilenet_v2.make_divisible(96 * 0.35) == 32  # 33.6 -> 32 (not below 30.24)
  assert mobilenet_v2.make_divisible(1280 * 1.4) == 1792


@pytest.mark.parametrize('architecture, backbone, sizes, total', [
    # SSD300 heads on MobileNet V1 (OD API ssd_mobilenet_v1 feature maps 19, 10, 5, 3, 2, 1).
    ('ssd300', 'mobilenet_v1', [19, 10, 5, 3, 2, 1], 8656814),
    ('ssd512', 'mobilenet_v1', [32, 16, 8, 4, 2, 1], 8656814),
    # SSDLite on MobileNetV2 (separable extras and heads).
    ('ssdlite', '', [19, 10, 5, 3, 2, 1], 3350958),
])
def test_mobilenet_ssd_networks(architecture, backbone, sizes, total):
  size = ssd_net.ARCHITECTURES[architecture].image_size
  assert ssd_net.feature_map_sizes(architecture, size, backbone) == sizes
  anchors = [4, 6, 6, 6, 4, 4]
  with tf.Graph().as_default():
    outputs = ssd_net.build_ssd(tf1.placeholder(tf.float32, [None, size, size, 3]),
                                architecture, 21, anchors, backbone=backbone,
                                extra_batch_norm=True)
    counts = ssd_net.count_parameters(architecture,
                                      backbone=ssd_net.backbone_name(architecture, backbone))
  num_anchors = sum(s * s * k for s, k in zip(sizes, anchors))
  assert outputs['class_logits'].shape.as_list() == [None, num_anchors, 21]
  assert counts['total'] == total
  if architecture == 'ssdlite':
    # By hand, with batch norm (gamma + beta) after each layer: per extra block of depth d on
    # c inputs, 1x1 c -> d/2, 3x3 depthwise d/2, 1x1 d/2 -> d.
    def block(c, d):
      h = d // 2
      return (c * h + 2 * h) + (9 * h + 2 * h) + (h * d + 2 * d)
    assert counts['extras'] == (block(1280, 512) + block(512, 256) + block(256, 256)
                                + block(256, 128)) == 656960
    # Heads: depthwise 3x3 + BN on each source, then 1x1 to k * 4 (box) with bias.
    depths = [576, 1280, 512, 256, 256, 128]
    assert counts['box_heads'] == sum(11 * c + (c + 1) * k * 4
                                      for c, k in zip(depths, anchors)) == 97720


def test_stride8_sources_put_conv_pw_5_first_with_the_same_weights():
  """--backbone_sources=stride8: conv_pw_5 (stride 8) is a source before the reference two;
  the backbone's variables and its other sources are the reference's."""
  assert backbones.get('mobilenet_v1').source_sets == ('reference', 'stride8')
  assert ssd_net.source_names('ssd_quick', 'mobilenet_v1', 'stride8') == [
      'conv_pw_5', 'conv_pw_11', 'conv_pw_13', 'extra1_2', 'extra2_2', 'extra3_2']
  assert ssd_net.feature_map_sizes('ssd_quick', 192, 'mobilenet_v1',
                                   backbone_sources='stride8') == [24, 12, 6, 3, 2, 1]
  assert ssd_net.feature_map_sizes('ssd_quick', 192, 'mobilenet_v1') == [12, 6, 3, 2, 1]
  images = np.random.RandomState(0).uniform(-1, 1, [1, 192, 192, 3]).astype(np.float32)
  results = {}
  for sources in ('reference', 'stride8'):
    with tf.Graph().as_default():
      tf1.set_random_seed(0)
      maps = ssd_net.build_feature_maps(tf.constant(images), 'ssd_quick', 'mobilenet_v1',
                                        width_multiplier=0.25, backbone_sources=sources)
      backbone_variables = [(v.name, v.shape.as_list()) for v in tf1.global_variables()
                            if v.name.startswith('mobilenet_v1/')]
      with tf1.Session() as session:
        session.run(tf1.global_variables_initializer())
        values = session.run(dict(maps))
        pw5 = session.run(tf1.get_default_graph().get_tensor_by_name(
            'mobilenet_v1/conv_pw_5/Relu6:0'))
    results[sources] = backbone_variables, values, pw5
  assert results['stride8'][0] == results['reference'][0]
  stride8 = results['stride8'][1]
  assert stride8['conv_pw_5'].shape == (1, 24, 24, 64)  # int(256 * 0.25), stride 8
  np.testing.assert_array_equal(stride8['conv_pw_5'], results['stride8'][2])
  for name in ('conv_pw_11', 'conv_pw_13'):
    np.testing.assert_array_equal(stride8[name], results['reference'][1][name])


def test_a_source_set_the_backbone_lacks_is_refused_by_name():
  quick = dict(architecture='ssd_quick', image_size=192, anchor_min_scale=0.08,
               anchor_max_scale=0.85, backbone_sources='stride8')
  validation.validate(config_lib.SSDConfig(model=config_lib.ModelConfig(
      backbone='mobilenet_v1', width_multiplier=0.5, **quick)), training=False)
  for backbone in ('vgg16', 'mobilenet_v2'):
    with pytest.raises(ValueError, match='Backbone %s has no --backbone_sources=stride8: use '
                                         'one of reference\\.$' % backbone):
      validation.validate(config_lib.SSDConfig(model=config_lib.ModelConfig(
          backbone=backbone, **quick)), training=False)
    with pytest.raises(ValueError, match='has no --backbone_sources=stride8'):
      ssd_net.feature_map_sizes('ssd_quick', 192, backbone, backbone_sources='stride8')
