"""The models the bench scripts measure: every backbone x head the project ships, and the
ModelConfig each is timed or measured with (shared by bench/forward.py and bench/peak_memory.py).
"""

from net import model_spec
from net import ssd_net
from utility import config as config_lib


# (architecture, backbone) pairs of --table: every backbone x head the project ships.
TABLE_MODELS = (('ssd300', 'vgg16'), ('ssd512', 'vgg16'), ('ssd300', 'mobilenet_v1'),
                ('ssd512', 'mobilenet_v1'), ('ssdlite', 'mobilenet_v2'),
                ('ssdlite', 'mobilenet_v1'), ('ssd300', 'mobilenet_v2'))


def model_config(architecture, backbone='', width_multiplier=1.0):
  """ModelConfig of a model to time: the preset boxes where they fit, else 0.2 to 0.95."""
  config = config_lib.ModelConfig(
      architecture=architecture, backbone=backbone, width_multiplier=width_multiplier,
      image_size=ssd_net.ARCHITECTURES[architecture].image_size,
      extra_batch_norm=ssd_net.backbone_name(architecture, backbone) != 'vgg16')
  try:
    model_spec.anchor_layers(config)
  except ValueError:
    config = config_lib.ModelConfig(**dict(config.__dict__, anchor_min_scale=0.2,
                                           anchor_max_scale=0.95))
  return config
