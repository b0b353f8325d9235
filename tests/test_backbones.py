import collections

import numpy as np
import pytest
import tensorflow as tf

from net import backbones
from net import layers
from net import model_spec
from net import ssd_net
from tests import vgg_golden
from utility import checkpoint
from utility import config as config_lib
from utility import image_convention

tf1 = tf.compat.v1


@pytest.mark.parametrize('case', sorted(vgg_golden.CASES))
def test_vgg_networks_keep_their_variables_and_outputs(case, tmp_path):
  """The redesign left VGG16 SSD300/SSD512/quick bit for bit: same variables (names, shapes)
  and, from a checkpoint of those variables, the outputs recorded before it (commit a74bfca)."""
  golden = vgg_golden.load()[case]
  vgg_golden.write_checkpoint(golden['variables'], str(tmp_path))
  variables, outputs = vgg_golden.run(case, checkpoint_dir=str(tmp_path))
  assert variables == [(name, shape) for name, shape in golden['variables']]
  expected = golden['outputs']
  assert outputs['num_anchors'] == expected['num_anchors']
  for key in ('box_offsets', 'class_logits'):
    want = np.asarray(expected[key])
    # oneDNN and TF's own kernels sum in different orders: float32 rounding only.
    np.testing.assert_allclose(outputs[key], want, rtol=0, atol=2e-5 * np.abs(want).max())
    assert outputs[key + '_sum'] == pytest.approx(expected[key + '_sum'], rel=1e-4, abs=1e-2)


def _tiny_backbone_sources(images, options):
  """A contributor's backbone: two strided convolutions, sources at strides 4 and 8."""
  with tf1.variable_scope('tiny'):
    net = layers.conv2d(images, 8, 3, 'conv1', stride=4, data_format=options.data_format,
                        batch_norm=options.batch_norm, is_training=options.is_training)
    stride8 = layers.conv2d(net, 16, 3, 'conv2', stride=2, data_format=options.data_format,
                            batch_norm=options.batch_norm, is_training=options.is_training)
  return collections.OrderedDict([('stride4', net), ('stride8', stride8)])


TINY = backbones.Backbone(
    name='tiny_test', scope='tiny',
    convention=image_convention.ImageConvention((100.0, 50.0, 0.0), (2.0, 2.0, 2.0), 'bgr'),
    build=_tiny_backbone_sources, init_from_checkpoint=None, activation=tf.nn.relu)


def test_a_backbone_registered_at_run_time_serves_anchors_network_and_input_convention():
  backbones.register(TINY)
  assert 'tiny_test' in backbones.names() and backbones.get('tiny_test') is TINY
  config = config_lib.ModelConfig(architecture='ssd_quick', backbone='tiny_test', image_size=64,
                                  anchor_min_scale=0.2, anchor_max_scale=0.9)
  # Grid sizes come from the sources' static shapes: 64/4 = 16, 64/8 = 8, then the quick
  # architecture's generic extras (3x3 stride 2, pad 1): 4, 2, 1.
  assert ssd_net.feature_map_sizes('ssd_quick', 64, 'tiny_test') == [16, 8, 4, 2, 1]
  assert ssd_net.source_names('ssd_quick', 'tiny_test') == [
      'stride4', 'stride8', 'extra1_2', 'extra2_2', 'extra3_2']
  per_location = model_spec.anchors_per_location(config)
  assert per_location == [4, 6, 6, 4, 4]
  with tf.Graph().as_default():
    outputs = model_spec.build_network(tf1.placeholder(tf.float32, [None, 64, 64, 3]), config,
                                       is_training=False)
    counts = ssd_net.count_parameters('ssd_quick', backbone='tiny_test')
  num_anchors = 16 * 16 * 4 + 8 * 8 * 6 + 4 * 4 * 6 + 2 * 2 * 4 + 4
  assert outputs['box_offsets'].shape.as_list() == [None, num_anchors, 4]
  assert model_spec.num_anchors(config) == num_anchors
  # conv1 3*3*3*8 + 8, conv2 3*3*8*16 + 16.
  assert counts['backbone'] == 224 + 1168
  # The input convention comes from the backbone: BGR, (pixel - mean) / 2.
  assert model_spec.image_convention(config) is TINY.convention
  pixel = np.array([[[[200.0, 150.0, 10.0]]]], np.float32)
  with tf.Graph().as_default(), tf1.Session() as session:
    normalized = session.run(model_spec.image_convention(config).normalize(pixel))
  np.testing.assert_allclose(normalized[0, 0, 0], [5.0, 50.0, 50.0])


def test_unknown_backbone_names_the_flag_and_the_choices():
  with pytest.raises(ValueError, match=r"Unknown --backbone 'resnet50': use one of "
                                       r'mobilenet_v1, mobilenet_v2, .*vgg16'):
    backbones.get('resnet50')
  with pytest.raises(TypeError, match='takes a net.backbones.Backbone'):
    backbones.register('vgg16')


def test_every_builtin_backbone_declares_its_convention():
  assert backbones.get('vgg16').convention == image_convention.ImageConvention(
      (123.68, 116.78, 103.94))
  for name in ('mobilenet_v1', 'mobilenet_v2'):
    convention = backbones.get(name).convention
    assert convention.mean_rgb == (127.5,) * 3 and convention.std_rgb == (127.5,) * 3


def test_a_stem_the_backbone_lacks_or_pretrained_weights_do_not_fit_is_refused():
  from net import validation
  quick = dict(architecture='ssd_quick', image_size=192, width_multiplier=0.25,
               anchor_min_scale=0.08, anchor_max_scale=0.85)
  assert backbones.get('vgg16').stems == ('reference', 'strided')
  assert backbones.get('mobilenet_v1').stems == ('reference',)
  validation.validate(config_lib.SSDConfig(model=config_lib.ModelConfig(stem='strided', **quick)))
  with pytest.raises(ValueError, match='Backbone mobilenet_v1 has no --stem=strided: use one of '
                                       'reference.'):
    validation.validate(config_lib.SSDConfig(model=config_lib.ModelConfig(
        stem='strided', backbone='mobilenet_v1', **quick)), training=False)
  with pytest.raises(ValueError, match=r'--checkpoint_path \(ImageNet vgg16\) fits the reference '
                                       'stem only: drop --stem=strided.'):
    validation.validate(config_lib.SSDConfig(
        model=config_lib.ModelConfig(stem='strided', **dict(quick, width_multiplier=1.0)),
        train=config_lib.TrainConfig(checkpoint_path='vgg_16.ckpt')))
  with pytest.raises(ValueError, match='Backbone mobilenet_v2 has no --stem=strided'):
    with tf.Graph().as_default():
      ssd_net.build_ssd(tf.zeros([1, 192, 192, 3]), 'ssd_quick', 3, [4, 6, 6, 6, 4],
                        backbone='mobilenet_v2', stem='strided')
