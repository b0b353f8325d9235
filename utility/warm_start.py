"""Warm start from a full SSD checkpoint (fine-tuning, e.g. a VOC model to another class set),
with a restore report.

``--checkpoint_path`` may name a backbone checkpoint (the backbone's own loader: slim VGG16,
Keras .h5) or a checkpoint of a whole SSD; the second is recognised by variables under the
model's scope outside its backbone (``is_full_model_checkpoint``). Then every model variable
whose name and shape match a checkpoint tensor is restored; the rest keep their initializers.
The report, logged on every such warm start, names what was restored, skipped (same name,
another shape: the class heads of another class count), missing (not in the checkpoint: freshly
initialised) and unused (checkpoint tensors no variable took, optimizer slots and step counters
aside; utility/restore_report.py, shared with the backbone loaders). A restore that reaches
none of the backbone's variables fails with a sentence: that is the silent failure (mAP near
zero) this exists to prevent.
"""

import tensorflow as tf

from utility import checkpoint
from utility import restore_report


def is_full_model_checkpoint(path, model_scope, backbone_scope):
  """True if the checkpoint at path holds variables under model_scope/ beyond the backbone."""
  shapes = tf.train.load_checkpoint(path).get_variable_to_shape_map()
  prefix = model_scope.rstrip('/') + '/'
  backbone_prefix = prefix + backbone_scope.rstrip('/') + '/'
  return any(name.startswith(prefix) and not name.startswith(backbone_prefix)
             and not restore_report.is_training_state(name) for name in shapes)


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
  unused = sorted(n for n in shapes
                  if n not in used and not restore_report.is_training_state(n))
  report = restore_report.RestoreReport(path, [key for _, key, _ in plan], skipped, missing,
                                        unused)
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
    plan, report = plan_full_restore(path, restore_report.model_variables(model_scope),
                                     prefix + backbone_scope.rstrip('/') + '/',
                                     exclude_prefixes)
    return checkpoint.BackboneInit(path, plan, report=report)

  replica_context = tf.distribute.get_replica_context()
  init = build() if replica_context is None else replica_context.merge_call(build)
  return init.init_fn
