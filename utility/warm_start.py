"""Warm start from a full SSD checkpoint (fine-tuning, e.g. a VOC model to another class set),
with a restore report.

``--checkpoint_path`` may name a backbone checkpoint (the backbone's own loader: slim VGG16,
Keras .h5) or a checkpoint of a whole SSD; the second is recognised by variables under the
model's scope outside its backbone (``is_full_model_checkpoint``). Then every model variable
whose name and shape match a checkpoint tensor is restored; the rest keep their initializers.
The report, logged on every such warm start, names what was restored, skipped (same name,
another shape: the class heads of another class count), missing (not in the checkpoint: freshly
initialised) and unused (checkpoint tensors no variable took, optimizer slots and step counters
aside). A restore that reaches none of the backbone's variables fails with a sentence: that is
the silent failure (mAP near zero) this exists to prevent.
"""

import dataclasses
import typing

import tensorflow as tf
from absl import logging

from utility import checkpoint

tf1 = tf.compat.v1

# Checkpoint tensors that are training state, not model: optimizer slots and counters.
_STATE_MARKERS = ('/Momentum', '/Adam', '/RMSProp', '/ExponentialMovingAverage')
_STATE_NAMES = ('global_step', 'beta1_power', 'beta2_power')
MAX_LISTED = 20


def _is_training_state(name):
  return name.split('/')[-1] in _STATE_NAMES or any(m in name for m in _STATE_MARKERS)


def is_full_model_checkpoint(path, model_scope, backbone_scope):
  """True if the checkpoint at path holds variables under model_scope/ beyond the backbone."""
  shapes = tf.train.load_checkpoint(path).get_variable_to_shape_map()
  prefix = model_scope.rstrip('/') + '/'
  backbone_prefix = prefix + backbone_scope.rstrip('/') + '/'
  return any(name.startswith(prefix) and not name.startswith(backbone_prefix)
             and not _is_training_state(name) for name in shapes)


@dataclasses.dataclass
class RestoreReport:
  """Names by outcome; ``skipped`` entries are (name, checkpoint shape, variable shape)."""
  checkpoint_path: str
  restored: typing.List[str]
  skipped: typing.List[tuple]
  missing: typing.List[str]
  unused: typing.List[str]

  def lines(self):
    def listed(names):
      shown = ', '.join(names[:MAX_LISTED])
      return shown + (' and %d more' % (len(names) - MAX_LISTED) if len(names) > MAX_LISTED
                      else '')
    lines = ['Warm start from %s: %d variables restored, %d skipped (shape mismatch), %d '
             'missing (freshly initialised), %d checkpoint tensors unused.'
             % (self.checkpoint_path, len(self.restored), len(self.skipped), len(self.missing),
                len(self.unused))]
    if self.skipped:
      lines.append('  skipped: ' + listed(['%s (checkpoint %s, model %s)' % item
                                           for item in self.skipped]))
    if self.missing:
      lines.append('  missing: ' + listed(self.missing))
    if self.unused:
      lines.append('  unused: ' + listed(self.unused))
    return lines


def model_variables(model_scope):
  """The model's weights under model_scope/: trainable variables and batch-norm statistics."""
  prefix = model_scope.rstrip('/') + '/'
  candidates = tf1.trainable_variables() + [
      v for v in tf1.global_variables()
      if v.op.name.endswith(('/moving_mean', '/moving_variance'))]
  seen, selected = set(), []
  for variable in candidates:
    name = variable.op.name
    if name.startswith(prefix) and name not in seen:
      seen.add(name)
      selected.append(variable)
  return selected


def plan_full_restore(path, variables, backbone_prefix, exclude_prefixes=()):
  """(restore plan [(variable, key, None)], RestoreReport) of name-and-shape matching.

  Raises:
    checkpoint.CheckpointError: when no variable under backbone_prefix would be restored.
  """
  shapes = tf.train.load_checkpoint(path).get_variable_to_shape_map()
  plan, skipped, missing, used = [], [], [], set()
  for variable in variables:
    name = variable.op.name
    if any(name.startswith(p) for p in exclude_prefixes):
      missing.append(name)
      continue
    if name not in shapes:
      missing.append(name)
      continue
    used.add(name)
    if list(shapes[name]) != variable.shape.as_list():
      skipped.append((name, list(shapes[name]), variable.shape.as_list()))
      continue
    plan.append((variable, name, None))
  unused = sorted(n for n in shapes if n not in used and not _is_training_state(n))
  report = RestoreReport(path, [key for _, key, _ in plan], skipped, missing, unused)
  if not any(key.startswith(backbone_prefix) for key in report.restored):
    raise checkpoint.CheckpointError(
        'None of the backbone variables (%s*) was restored from --checkpoint_path=%s: %s. '
        'Check --checkpoint_path and --model_scope (the checkpoint\'s variables must be named '
        'as this model\'s).' % (backbone_prefix, path, report.lines()[0]))
  return plan, report


def full_model_init_fn(checkpoint_path, model_scope, backbone_scope, exclude_scopes=()):
  """A Scaffold init_fn restoring every matching variable of a full SSD checkpoint.

  Raises:
    checkpoint.CheckpointError: no checkpoint at the path, or no backbone variable restored.
  """
  path = checkpoint.resolve_checkpoint_path(checkpoint_path)
  prefix = model_scope.rstrip('/') + '/'
  exclude_prefixes = [prefix + s.rstrip('/') + '/' for s in exclude_scopes]

  def build(_=None):
    plan, report = plan_full_restore(path, model_variables(model_scope),
                                     prefix + backbone_scope.rstrip('/') + '/',
                                     exclude_prefixes)
    for line in report.lines():
      logging.info('%s', line)
    init = checkpoint.BackboneInit(path, plan)
    init.report = report
    return init

  replica_context = tf.distribute.get_replica_context()
  init = build() if replica_context is None else replica_context.merge_call(build)
  return init.init_fn
