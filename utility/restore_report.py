"""What a warm start restored: the report logged on every warm start (backbone or full model).

The most common silent failure of SSD ports is a pretrained checkpoint that did not load and a
mAP near zero. So every warm start logs, by outcome, the names of the model variables that were
restored, skipped (same name, another shape: e.g. the class heads of another class count),
missing (not taken from the checkpoint: freshly initialised) and the checkpoint tensors no
variable took (unused; optimizer slots and step counters aside).
"""

import dataclasses
import typing

import tensorflow as tf

tf1 = tf.compat.v1

# Checkpoint tensors that are training state, not model: optimizer slots and counters.
_STATE_MARKERS = ('/Momentum', '/Adam', '/RMSProp', '/ExponentialMovingAverage')
_STATE_NAMES = ('global_step', 'beta1_power', 'beta2_power')
MAX_LISTED = 20


def is_training_state(name):
  """True for optimizer slots, step counters and moving averages of a checkpoint."""
  return name.split('/')[-1] in _STATE_NAMES or any(m in name for m in _STATE_MARKERS)


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
  prefix = model_scope.rstrip('/') + '/' if model_scope else ''
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


def backbone_report(checkpoint_path, plan, checkpoint_names, model_scope):
  """The report of a backbone warm start: plan [(variable, checkpoint key, _)] restored, every
  other model variable missing, checkpoint tensors outside the plan unused."""
  used = {key for _, key, _ in plan}
  planned = {variable.op.name for variable, _, _ in plan}
  missing = [v.op.name for v in model_variables(model_scope) if v.op.name not in planned]
  unused = sorted(n for n in checkpoint_names if n not in used and not is_training_state(n))
  return RestoreReport(checkpoint_path, [variable.op.name for variable, _, _ in plan], [],
                       missing, unused)
