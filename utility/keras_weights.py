"""Backbone initialisation from Keras weight files (``.h5``), e.g. the Keras Applications
ImageNet weights of MobileNet V1/V2 (``mobilenet_1_0_224_tf_no_top.h5``,
``mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5``) or any file written by
``model.save_weights('x.h5')`` / ``model.save('x.h5')``. Nothing is downloaded: the user gives
the file.

Layout read (Keras' HDF5 weight format): one group per layer, its attribute ``weight_names``
listing the layer's weights (``conv1/kernel:0``, ``conv1_bn/gamma:0``, ...); a full model file
holds the same below ``model_weights``. A weight is addressed here as ``<layer>/<weight>``,
e.g. ``conv1/kernel``, ``conv1_bn/moving_mean``, ``conv_dw_1/depthwise_kernel``.

The backbone module says which Keras weight each of its variables takes (``keras_name``);
everything that can go wrong (not an HDF5 weight file, a missing weight, a wrong shape, e.g.
another width multiplier) is one CheckpointError sentence at start-up naming the file.
"""

import os

import h5py
import numpy as np
import tensorflow as tf

from utility import checkpoint
from utility import restore_report

tf1 = tf.compat.v1


def _weights_group(handle):
  return handle['model_weights'] if 'model_weights' in handle else handle


def _decode(value):
  return value.decode('utf-8') if isinstance(value, bytes) else str(value)


def weight_shapes(path):
  """{'<layer>/<weight>': shape tuple} of every weight in a Keras .h5 file.

  Raises:
    CheckpointError: if the file is missing or not a Keras HDF5 weight file.
  """
  if not os.path.isfile(path):
    raise checkpoint.CheckpointError(
        'No Keras weight file at %r: give the .h5 file itself (e.g. Keras Applications '
        'mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5).' % (path,))
  try:
    with h5py.File(path, 'r') as handle:
      group = _weights_group(handle)
      shapes = {}
      for layer in group.attrs.get('layer_names', list(group.keys())):
        layer = _decode(layer)
        for weight in group[layer].attrs.get('weight_names', []):
          weight = _decode(weight)
          shapes['%s/%s' % (layer, weight.split('/')[-1].split(':')[0])] = tuple(
              group[layer][weight].shape)
  except (OSError, KeyError) as error:
    raise checkpoint.CheckpointError('%r is not a Keras HDF5 weight file (%s).'
                                     % (path, error)) from None
  if not shapes:
    raise checkpoint.CheckpointError('%r holds no Keras layer weights.' % (path,))
  return shapes


def read_weights(path, names):
  """{name: numpy array} for '<layer>/<weight>' names of a Keras .h5 file."""
  wanted = set(names)
  values = {}
  with h5py.File(path, 'r') as handle:
    group = _weights_group(handle)
    for layer in group.attrs.get('layer_names', list(group.keys())):
      layer = _decode(layer)
      for weight in group[layer].attrs.get('weight_names', []):
        weight = _decode(weight)
        name = '%s/%s' % (layer, weight.split('/')[-1].split(':')[0])
        if name in wanted:
          values[name] = np.asarray(group[layer][weight])
  return values


def build_init_assignments(path, model_scope, backbone_scope, keras_name, variables=None,
                           exclude_scopes=()):
  """Plans the restore of every backbone variable from a Keras .h5 file; fails now if it cannot.

  Args:
    path: the .h5 file.
    model_scope: the model's variable scope, e.g. 'ssdlite'.
    backbone_scope: the backbone's scope below it, e.g. 'mobilenet_v2'.
    keras_name: function(name relative to the backbone scope, e.g. 'Conv1/BatchNorm/gamma')
      -> '<layer>/<weight>' in the file (e.g. 'bn_Conv1/gamma').
    variables: candidate variables; defaults to the graph's MODEL_VARIABLES.
    exclude_scopes: scopes below model_scope left to their initializers.

  Returns:
    utility.checkpoint.BackboneInit; call its init_fn from a Scaffold.

  Raises:
    CheckpointError: naming the file and the first weight that is missing or has another shape.
  """
  shapes = weight_shapes(path)

  def build(_=None):
    selected = checkpoint.backbone_variables(model_scope, backbone_scope, exclude_scopes,
                                             variables)
    if not selected:
      raise checkpoint.CheckpointError(
          'No backbone variables under %r to initialise from %r: build the model first.'
          % ('%s/%s' % (model_scope, backbone_scope), path))
    plan = []
    for variable, relative in selected:
      name = keras_name(relative)
      expected = tuple(variable.shape.as_list())
      if name not in shapes:
        raise checkpoint.CheckpointError(
            'Keras weight file %r has no weight %s for the backbone variable %s: is it the '
            'weights file of this backbone?' % (path, name, variable.op.name))
      if shapes[name] != expected:
        raise checkpoint.CheckpointError(
            'Keras weight file %r has %s with shape %s, expected %s for %s (is the width '
            'multiplier the same as the file\'s alpha?).'
            % (path, name, list(shapes[name]), list(expected), variable.op.name))
      plan.append((variable, name, None))
    return checkpoint.BackboneInit(
        path, plan, read_tensors=lambda names: read_weights(path, names),
        report=restore_report.backbone_report(path, plan, shapes, model_scope))

  replica_context = tf.distribute.get_replica_context()
  return build() if replica_context is None else replica_context.merge_call(build)


def init_from_checkpoint_fn(backbone_scope, keras_name):
  """A Backbone.init_from_checkpoint for a backbone whose variables map to Keras weights.

  Returns:
    init_from_checkpoint(checkpoint_path, model_scope, model_config, train_config) -> Scaffold
    init_fn; the file's shapes check the width multiplier (Keras alpha).
  """

  def init_from_checkpoint(checkpoint_path, model_scope, model_config, train_config):
    del model_config
    return build_init_assignments(checkpoint_path, model_scope, backbone_scope, keras_name,
                                  exclude_scopes=train_config.checkpoint_exclude_scopes).init_fn

  return init_from_checkpoint
