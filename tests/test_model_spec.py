import numpy as np
import pytest
import tensorflow as tf

from net import model_spec
from utility import anchors
from utility import config

tf1 = tf.compat.v1


def test_reference_presets_match_the_networks():
  ssd300 = config.ModelConfig()
  assert model_spec.anchors_per_location(ssd300) == [4, 6, 6, 6, 4, 4]
  assert model_spec.num_anchors(ssd300) == 8732
  assert model_spec.anchor_layers(ssd300) == anchors.SSD300_LAYERS
  ssd512 = config.ModelConfig(architecture='ssd512', image_size=512)
  assert model_spec.num_anchors(ssd512) == 24564


def test_scaled_anchors_follow_the_network_feature_maps():
  quick = config.ModelConfig(architecture='ssd_quick', image_size=192, anchor_min_scale=0.1,
                             anchor_max_scale=0.9)
  layers = model_spec.anchor_layers(quick)
  assert [layer.feature_size for layer in layers] == [24, 12, 6, 3, 1]
  # 5 layers: scales 0.1, 0.3, 0.5, 0.7, 0.9 (+1.1 for the last max size) of 192 px.
  np.testing.assert_allclose([layer.min_size for layer in layers],
                             [19.2, 57.6, 96.0, 134.4, 172.8])
  np.testing.assert_allclose(layers[-1].max_size, 211.2)
  assert model_spec.anchors_per_location(quick) == [4, 6, 6, 4, 4]
  assert model_spec.num_anchors(quick) == 24 * 24 * 4 + 144 * 6 + 36 * 6 + 9 * 4 + 4


def test_preset_at_another_size_says_what_to_change():
  with pytest.raises(ValueError, match=r'The ssd300 anchor preset is for 300x300 inputs .* use 300 '
                                       r'or set --anchor_min_scale and --anchor_max_scale'):
    model_spec.anchor_layers(config.ModelConfig(image_size=320))
  with pytest.raises(ValueError, match="Architecture 'ssd_quick' has no anchor preset"):
    model_spec.anchor_layers(config.ModelConfig(architecture='ssd_quick', image_size=192))


def test_network_outputs_match_anchor_count_and_mixed_precision_stays_float32_outside():
  quick = config.ModelConfig(architecture='ssd_quick', image_size=160, width_multiplier=0.0625,
                             anchor_min_scale=0.1, anchor_max_scale=0.9,
                             compute_dtype='bfloat16', backbone_batch_norm=True,
                             class_names=('a', 'b'))
  with tf.Graph().as_default():
    outputs = model_spec.build_network(tf1.placeholder(tf.float32, [None, 160, 160, 3]), quick,
                                       is_training=True)
    assert outputs['class_logits'].shape.as_list() == [None, model_spec.num_anchors(quick), 3]
    assert outputs['box_offsets'].dtype == tf.float32
    assert outputs['class_logits'].dtype == tf.float32
    assert all(v.dtype.base_dtype == tf.float32 for v in tf1.global_variables())
    assert outputs['feature_maps'][1].dtype == tf.bfloat16
