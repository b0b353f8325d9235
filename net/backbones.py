"""The backbone interface and its registry.

A backbone is one module that defines ``BACKBONE = Backbone(...)``: how to build its source
feature maps, the image convention its weights expect and how to load its pretrained weights.
Nothing else in the project knows which backbone it runs: net/ssd_net.py builds the extra
layers and heads on the sources, net/model_spec.py reads the grid sizes of the anchors from the
sources' static shapes, and the input pipeline, the model_fn, export and the demo take the image
convention from here.

Adding a backbone: write ``net/<name>.py`` with ``BACKBONE``, and add one line to
``_BUILTIN_MODULES`` (or call ``register(backbone)`` at run time, e.g. from a test or a user's
own module, with no file of the project edited).
"""

import collections
import dataclasses
import importlib
from typing import Callable, Tuple

from utility import image_convention

# The stem every backbone has: its first layers as its paper (and its pretrained weights) have
# them.
REFERENCE_STEM = 'reference'

# The source set every backbone has: the layers that feed the heads in its SSD paper (or the
# OD API's config).
REFERENCE_SOURCES = 'reference'

# Options every backbone's build receives (from ModelConfig, resolved for this machine); stem is
# one of the backbone's `stems`, sources one of its `source_sets`.
BuildOptions = collections.namedtuple(
    'BuildOptions', ['data_format', 'width_multiplier', 'is_training', 'batch_norm', 'stem',
                     'sources'])
BuildOptions.__new__.__defaults__ = (REFERENCE_STEM, REFERENCE_SOURCES)


@dataclasses.dataclass(frozen=True)
class Backbone:
  """One backbone.

  Attributes:
    name: registry key, the value of --backbone.
    scope: variable scope of its layers below the model scope (e.g. 'vgg_16').
    convention: utility.image_convention.ImageConvention of its pretrained weights.
    build: build(images, options) -> collections.OrderedDict source name -> float tensor in
      options.data_format, finest first. `images` are [batch, size, size, 3] already in the
      convention and in data_format; the call runs inside the model's variable scope and must
      put its variables under `scope` (or under `extra_scopes`).
    init_from_checkpoint: init_from_checkpoint(checkpoint_path, model_scope, model_config,
      train_config) -> Scaffold init_fn(scaffold, session) loading the pretrained weights;
      raises utility.checkpoint.CheckpointError (a ValueError) naming the file when it cannot.
    activation: the activation its extra layers and separable heads use (relu, relu6).
    extra_scopes: (parameter part, scope below the model scope) of variables the build makes
      outside `scope`, e.g. VGG's conv4_3 L2-norm scale.
    pretrained_widths: width multipliers for which pretrained weights exist.
    always_batch_norm: True if the backbone has batch norm in every case (MobileNets);
      False if ModelConfig.backbone_batch_norm decides (VGG, whose reference has none).
    stems: the values of ModelConfig.stem its build understands, REFERENCE_STEM first (the
      only one pretrained weights fit).
    source_sets: the values of ModelConfig.backbone_sources its build understands,
      REFERENCE_SOURCES first: which of its layers it returns as sources.
  """
  name: str
  scope: str
  convention: image_convention.ImageConvention
  build: Callable
  init_from_checkpoint: Callable
  activation: Callable
  extra_scopes: Tuple[Tuple[str, str], ...] = ()
  pretrained_widths: Tuple[float, ...] = (1.0,)
  always_batch_norm: bool = False
  stems: Tuple[str, ...] = (REFERENCE_STEM,)
  source_sets: Tuple[str, ...] = (REFERENCE_SOURCES,)

  def check_stem(self, stem):
    """Raises ValueError naming --stem unless this backbone builds `stem`."""
    if stem not in self.stems:
      raise ValueError('Backbone %s has no --stem=%s: use one of %s.'
                       % (self.name, stem, ', '.join(self.stems)))

  def check_sources(self, sources):
    """Raises ValueError naming --backbone_sources unless this backbone builds `sources`."""
    if sources not in self.source_sets:
      raise ValueError('Backbone %s has no --backbone_sources=%s: use one of %s.'
                       % (self.name, sources, ', '.join(self.source_sets)))

  def parameter_parts(self):
    """(part, scope) pairs of the backbone's variables for ssd_net.count_parameters."""
    return (('backbone', self.scope),) + tuple(self.extra_scopes)


# name -> module defining BACKBONE; imported on first use.
_BUILTIN_MODULES = {
    'vgg16': 'net.vgg',
    'mobilenet_v1': 'net.mobilenet_v1',
    'mobilenet_v2': 'net.mobilenet_v2',
}
_REGISTERED = {}


def register(backbone):
  """Adds (or replaces) a backbone under backbone.name; returns it."""
  if not isinstance(backbone, Backbone):
    raise TypeError('register() takes a net.backbones.Backbone, got %r.' % (backbone,))
  _REGISTERED[backbone.name] = backbone
  return backbone


def names():
  """Sorted names of every known backbone."""
  return sorted(set(_BUILTIN_MODULES) | set(_REGISTERED))


def get(name):
  """The Backbone registered as `name`.

  Raises:
    ValueError: for an unknown name, listing the known ones (the --backbone flag).
  """
  if name in _REGISTERED:
    return _REGISTERED[name]
  module = _BUILTIN_MODULES.get(name)
  if module is None:
    raise ValueError('Unknown --backbone %r: use one of %s.' % (name, ', '.join(names())))
  return register(importlib.import_module(module).BACKBONE)
