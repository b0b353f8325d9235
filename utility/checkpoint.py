"""Backbone initialisation from TF-slim's ImageNet ``vgg_16.ckpt`` (docs/RECIPE.md, "Pretrained
backbone").

slim's checkpoint holds ``vgg_16/conv1/conv1_1/weights`` ... ``vgg_16/fc6/weights`` [7,7,512,4096]
and ``vgg_16/fc7/weights`` [1,1,4096,4096]. SSD's backbone (net/vgg.py) has the same names below
its model scope (``ssd300/vgg_16/...``) but reduced fc layers: fc6 [3,3,512,1024] with dilation 6
and fc7 [1,1,1024,1024]. The reduction is decimation (the authors' Caffe "fc reduced" VGG):

  fc6 kernel[0::3, 0::3, :, 0::4], bias[0::4]    fc7 kernel[:, :, 0::4, 0::4], bias[0::4]

An already reduced checkpoint with the same names loads as it is. Only backbone variables are
restored; L2-norm scale, extra layers and heads start fresh.

Usage in a model_fn (restore only on a fresh start; a checkpoint in model_dir wins)::

  if checkpoint_path and not checkpoint.model_dir_has_checkpoint(model_dir):
    scaffold = tf.compat.v1.train.Scaffold(init_fn=checkpoint.vgg_init_fn(
        checkpoint_path, model_scope, width_multiplier=width_multiplier))

Everything that can go wrong (no checkpoint at the path, a missing variable, a shape that is
neither full nor reduced) is checked when the init function is built, i.e. at start-up, and
reported as one CheckpointError sentence naming the path and what was expected. The tensors are
read, decimated (numpy) and assigned when the session initialises. Under a tf.distribute
strategy (Estimator with MirroredStrategy) the assign ops are built in cross-replica context, so
every replica's copy receives the pretrained values.
"""

import glob
import os

import numpy as np
import tensorflow as tf
from absl import logging

from utility import restore_report

tf1 = tf.compat.v1

SLIM_SCOPE = 'vgg_16'  # Prefix of the variables in slim's checkpoint.
SLIM_VGG16_URL = 'http://download.tensorflow.org/models/vgg_16_2016_08_28.tar.gz'


class CheckpointError(ValueError):
  """A pretrained checkpoint that cannot initialise the backbone; the message says why."""


# Decimation indices (docs/RECIPE.md): relative variable name -> numpy index of the kept entries.
_FC6_KERNEL_INDEX = np.s_[0::3, 0::3, :, 0::4]
_FC7_KERNEL_INDEX = np.s_[:, :, 0::4, 0::4]
_FC_BIAS_INDEX = np.s_[0::4,]
_DECIMATION_INDEX = {
    'fc6/weights': _FC6_KERNEL_INDEX, 'fc6/biases': _FC_BIAS_INDEX,
    'fc7/weights': _FC7_KERNEL_INDEX, 'fc7/biases': _FC_BIAS_INDEX,
}
DECIMATED_VARIABLES = tuple(sorted(_DECIMATION_INDEX))  # Names below the 'vgg_16' scope.


def decimate_fc6(kernel, bias):
  """Reduces slim fc6 to SSD's: kernel [7,7,C,4F] -> [3,3,C,F], bias [4F] -> [F] (numpy).

  Keeps taps 0, 3, 6 of each spatial axis (so the 3x3 kernel runs with dilation 6 to span the
  same 7x7 window at stride 1) and every 4th output filter.
  """
  return decimate('fc6/weights', kernel), decimate('fc6/biases', bias)


def decimate_fc7(kernel, bias):
  """Reduces slim fc7 to SSD's: kernel [1,1,4F,4F] -> [1,1,F,F], bias [4F] -> [F] (numpy).

  Keeps every 4th input channel (the fc6 filters kept by decimate_fc6) and every 4th output.
  """
  return decimate('fc7/weights', kernel), decimate('fc7/biases', bias)


def decimate(relative_name, value):
  """Decimates the array of 'fc6/weights', 'fc6/biases', 'fc7/weights' or 'fc7/biases'.

  Returns a compact copy, not a view, so the full slim array (411 MB for fc6) can be freed.
  """
  return np.ascontiguousarray(value[_DECIMATION_INDEX[relative_name]])


def _decimated_shape(relative_name, full_shape):
  """Shape decimation gives from full_shape (computed without an array), or None."""
  index = _DECIMATION_INDEX.get(relative_name)
  if index is None or len(index) != len(full_shape):
    return None
  return [len(range(*part.indices(size))) for part, size in zip(index, full_shape)]


def _full_shape(relative_name, reduced_shape):
  """The slim (full) shape whose decimation gives reduced_shape, for the error message."""
  shape = list(reduced_shape)
  if relative_name == 'fc6/weights':
    return [3 * shape[0] - 2, 3 * shape[1] - 2, shape[2], 4 * shape[3]]
  if relative_name == 'fc7/weights':
    return [shape[0], shape[1], 4 * shape[2], 4 * shape[3]]
  return [4 * shape[0]]


def checkpoint_step(model_dir):
  """The global step of model_dir's newest checkpoint (its name's -N suffix); 0 without one."""
  latest = tf.train.latest_checkpoint(model_dir) if model_dir else None
  return int(latest.rsplit('-', 1)[-1]) if latest else 0


def model_dir_has_checkpoint(model_dir):
  """True if model_dir holds a checkpoint of its own (then it is resumed, not re-initialised)."""
  return bool(model_dir) and tf.train.latest_checkpoint(model_dir) is not None


def _find_checkpoint(path):
  """A checkpoint prefix for a prefix or a directory, or None."""
  if not path:
    return None
  if not os.path.isdir(path):
    return path
  latest = tf.train.latest_checkpoint(path)
  if latest is not None:
    return latest
  # No 'checkpoint' state file, e.g. the extracted slim tarball: accept a single checkpoint.
  candidates = set(glob.glob(os.path.join(path, '*.ckpt')))
  candidates |= {name[:-len('.index')] for name in glob.glob(os.path.join(path, '*.index'))}
  return candidates.pop() if len(candidates) == 1 else None


def find_tf_checkpoint(path):
  """The TF checkpoint prefix at path (a prefix or a folder), or None when there is none there
  (e.g. a Keras .h5 file)."""
  resolved = _find_checkpoint(path)
  if resolved is None:
    return None
  try:
    tf.train.load_checkpoint(resolved)
  except (tf.errors.OpError, ValueError):
    return None
  return resolved


def resolve_checkpoint_path(path):
  """Returns the checkpoint prefix for a file prefix or a directory (its latest checkpoint).

  A directory without a 'checkpoint' state file is accepted if it holds exactly one checkpoint
  (e.g. the extracted slim tarball with vgg_16.ckpt).

  Raises:
    CheckpointError: if no readable checkpoint is found.
  """
  resolved = find_tf_checkpoint(path)
  if resolved is not None:
    return resolved
  raise CheckpointError(
      'No checkpoint found at %r: expected a TF checkpoint such as TF-slim vgg_16.ckpt (from %s) '
      'or a directory holding one.' % (path, SLIM_VGG16_URL))


def _checkpoint_name(relative_name, checkpoint_model_scope, checkpoint_shapes):
  """The checkpoint key for a backbone variable: with the slim prefix, or without it."""
  candidates = [relative_name]
  if checkpoint_model_scope:
    candidates.insert(0, checkpoint_model_scope.rstrip('/') + '/' + relative_name)
  return next((name for name in candidates if name in checkpoint_shapes), None), candidates


def _plan_variable(variable, relative_name, path, checkpoint_model_scope, checkpoint_shapes):
  """Returns (variable, checkpoint key, name to decimate or None) after checking the shape."""
  name, candidates = _checkpoint_name(relative_name, checkpoint_model_scope, checkpoint_shapes)
  if name is None:
    raise CheckpointError(
        'Checkpoint %r has no variable %s for the backbone variable %s: expected a TF-slim '
        'vgg_16 checkpoint (set the checkpoint model scope to its variable prefix).'
        % (path, ' or '.join(repr(c) for c in candidates), variable.op.name))
  shape = list(checkpoint_shapes[name])
  expected = variable.shape.as_list()
  if shape == expected:
    return variable, name, None
  if _decimated_shape(relative_name, shape) == expected:
    return variable, name, relative_name
  expected_text = str(expected)
  if relative_name in _DECIMATION_INDEX:
    expected_text += ' (reduced) or %s (full slim, decimated on load)' % _full_shape(
        relative_name, expected)
  raise CheckpointError(
      'Checkpoint %r has %s with shape %s, expected %s for %s (is the backbone width 1.0?).'
      % (path, name, shape, expected_text, variable.op.name))


def backbone_variables(model_scope, backbone_scope, exclude_scopes, variables):
  """(variable, name relative to the backbone scope) for every backbone variable to restore."""
  prefix = '/'.join(s for s in (model_scope, backbone_scope) if s) + '/'
  scope_prefix = model_scope + '/' if model_scope else ''
  if variables is None:
    variables = tf1.get_collection(tf1.GraphKeys.MODEL_VARIABLES)
  selected = []
  for variable in variables:
    name = variable.op.name
    if not name.startswith(prefix):
      continue
    relative_to_model = name[len(scope_prefix):]
    if any(relative_to_model.startswith(s.rstrip('/') + '/') or relative_to_model == s
           for s in exclude_scopes):
      continue
    selected.append((variable, name[len(prefix):]))
  return selected


class BackboneInit(object):
  """Assign ops that load the pretrained backbone, validated when built.

  Attributes:
    checkpoint_path: the resolved checkpoint prefix.
    plan: list of (variable, checkpoint key, relative name to decimate or None).
    assign_op: op assigning every planned variable from its placeholder.
  """

  def __init__(self, checkpoint_path, plan, read_tensors=None, report=None):
    """read_tensors: optional function [key] -> {key: numpy value}; default: the TF checkpoint
    at checkpoint_path (other formats, e.g. Keras .h5 weights, pass their own reader).
    report: the utility.restore_report.RestoreReport of this plan, logged when built."""
    self.checkpoint_path = checkpoint_path
    self.plan = plan
    self.report = report
    for line in report.lines() if report else ():
      logging.info('%s', line)
    self._read_tensors = read_tensors or self._read_checkpoint_tensors
    with tf.name_scope('backbone_init'):
      self._placeholders = [tf1.placeholder(variable.dtype.base_dtype, variable.shape)
                            for variable, _, _ in plan]
      self.assign_op = tf.group(*[variable.assign(placeholder) for (variable, _, _), placeholder
                                  in zip(plan, self._placeholders)])

  def _read_checkpoint_tensors(self, names):
    reader = tf.train.load_checkpoint(self.checkpoint_path)
    return {name: reader.get_tensor(name) for name in names}

  def feed_dict(self):
    """Reads (and decimates) the checkpoint tensors: {placeholder: numpy value}."""
    values = self._read_tensors([name for _, name, _ in self.plan])
    feed = {}
    for (_, name, decimated_name), placeholder in zip(self.plan, self._placeholders):
      value = values[name]
      feed[placeholder] = decimate(decimated_name, value) if decimated_name else value
    return feed

  def run(self, session):
    """Assigns the pretrained values in session (after the variables are initialised)."""
    logging.info('Initialising %d backbone variables from %s', len(self.plan),
                 self.checkpoint_path)
    session.run(self.assign_op, feed_dict=self.feed_dict())

  def init_fn(self, scaffold, session):
    """Signature of tf.compat.v1.train.Scaffold(init_fn=...)."""
    del scaffold
    self.run(session)


def build_init_assignments(checkpoint_path, model_scope, checkpoint_model_scope=SLIM_SCOPE,
                           backbone_scope=SLIM_SCOPE, exclude_scopes=(), variables=None):
  """Plans and builds the backbone restore; fails now if the checkpoint cannot serve it.

  Every variable below ``<model_scope>/<backbone_scope>/`` (MODEL_VARIABLES by default) is looked
  up as ``<checkpoint_model_scope>/<name below backbone_scope>`` or, failing that, without the
  prefix. A checkpoint shape equal to the variable's loads as is; fc6/fc7 in slim's full shape
  (relative to the variable's, so any width works) are decimated.

  Under a tf.distribute strategy the ops are built in cross-replica context, so an assignment
  reaches every replica's copy.

  Args:
    checkpoint_path: checkpoint prefix, or a directory (its latest checkpoint).
    model_scope: the model's variable scope, e.g. 'ssd300' ('' for none).
    checkpoint_model_scope: prefix of the backbone variables in the checkpoint ('vgg_16').
    backbone_scope: the backbone's scope below model_scope ('vgg_16').
    exclude_scopes: scopes below model_scope left to their initializers, e.g. ['vgg_16/fc7'].
    variables: candidate variables; defaults to the graph's MODEL_VARIABLES.

  Returns:
    A BackboneInit; call its ``init_fn`` from a Scaffold or its ``run(session)`` once.

  Raises:
    CheckpointError: no checkpoint at the path, a missing variable, or a wrong shape.
  """
  path = resolve_checkpoint_path(checkpoint_path)
  checkpoint_shapes = tf.train.load_checkpoint(path).get_variable_to_shape_map()

  def build(_=None):
    # In cross-replica context a mirrored variable reports its own name (not '.../replica_1')
    # and an assignment to it reaches every copy.
    selected = backbone_variables(model_scope, backbone_scope, exclude_scopes, variables)
    if not selected:
      raise CheckpointError('No backbone variables under %r to initialise from %r: build the '
                            'model before the init function.'
                            % ('%s/%s' % (model_scope, backbone_scope), checkpoint_path))
    plan = [_plan_variable(variable, relative, checkpoint_path, checkpoint_model_scope,
                           checkpoint_shapes) for variable, relative in selected]
    return BackboneInit(path, plan, report=restore_report.backbone_report(
        path, plan, checkpoint_shapes, model_scope))

  replica_context = tf.distribute.get_replica_context()
  return build() if replica_context is None else replica_context.merge_call(build)


def vgg_init_fn(checkpoint_path, model_scope, width_multiplier=1.0,
                checkpoint_model_scope=SLIM_SCOPE, exclude_scopes=()):
  """A Scaffold init_fn(scaffold, session) that loads slim VGG16 into the backbone.

  Args:
    checkpoint_path: slim vgg_16.ckpt (full fc) or a reduced copy, or a directory holding one.
    model_scope: the model's variable scope, e.g. 'ssd300'.
    width_multiplier: the backbone's; pretrained weights exist only for 1.0.
    checkpoint_model_scope: prefix of the backbone variables in the checkpoint.
    exclude_scopes: scopes below model_scope not to restore.

  Raises:
    CheckpointError: width_multiplier != 1.0, or see build_init_assignments.
  """
  if width_multiplier != 1.0:
    raise CheckpointError(
        'Pretrained VGG16 weights from %r need width_multiplier 1.0, got %r: set the width to 1.0 '
        'or train from scratch without a checkpoint path.' % (checkpoint_path, width_multiplier))
  return build_init_assignments(checkpoint_path, model_scope, checkpoint_model_scope,
                                exclude_scopes=exclude_scopes).init_fn


def latest_checkpoint(model_dir, checkpoint_path=''):
  """checkpoint_path (prefix or folder) if given, else the newest checkpoint of model_dir.

  Raises:
    ValueError: naming model_dir when it holds no checkpoint (CheckpointError, a ValueError,
      for a bad checkpoint_path).
  """
  if checkpoint_path:
    return resolve_checkpoint_path(checkpoint_path)
  path = tf.train.latest_checkpoint(model_dir)
  if not path:
    raise ValueError('%s holds no checkpoint: train a model into it with train_ssd.py first '
                     '(or pass --checkpoint_path).' % model_dir)
  return path
