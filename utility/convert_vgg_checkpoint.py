"""Converts TF-slim vgg_16.ckpt to a reduced-fc checkpoint once, for users who want to keep it.

    python -m utility.convert_vgg_checkpoint --input=vgg_16.ckpt --output=vgg_16_reduced.ckpt

fc6 [7,7,512,4096] -> [3,3,512,1024] and fc7 [1,1,4096,4096] -> [1,1,1024,1024] by decimation
(utility/checkpoint.py, docs/RECIPE.md "Pretrained backbone"); fc8 (the 1000 ImageNet logits
over the full fc7) is dropped; every other variable is copied unchanged under its own name.
The output loads into the SSD backbone as it is, like the original. It is written to a
temporary prefix in the output folder and renamed into place.
"""

import os
import sys

if not __package__:  # Run as a script: put the repo root on sys.path.
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import tensorflow as tf  # noqa: E402

from utility import checkpoint  # noqa: E402

tf1 = tf.compat.v1

flags.DEFINE_string('input', None, 'TF-slim vgg_16.ckpt (or a directory holding it).')
flags.DEFINE_string('output', None, 'Prefix of the reduced checkpoint to write.')
flags.DEFINE_string('checkpoint_model_scope', checkpoint.SLIM_SCOPE,
                    'Prefix of the VGG variables in the input; names without it are accepted too.')


def _relative_name(name, scope):
  prefix = scope.rstrip('/') + '/' if scope else ''
  return name[len(prefix):] if prefix and name.startswith(prefix) else name


def reduce_variables(input_path, checkpoint_model_scope=checkpoint.SLIM_SCOPE):
  """Reads a full slim VGG16 checkpoint; returns {name: numpy array} with fc6/fc7 reduced.

  Raises:
    checkpoint.CheckpointError: no checkpoint, no fc6/fc7, or fc6 already reduced.
  """
  path = checkpoint.resolve_checkpoint_path(input_path)
  reader = tf.train.load_checkpoint(path)
  shapes = reader.get_variable_to_shape_map()
  names = {_relative_name(name, checkpoint_model_scope): name for name in shapes}
  missing = [n for n in checkpoint.DECIMATED_VARIABLES if n not in names]
  if missing:
    raise checkpoint.CheckpointError('Checkpoint %r has no %s: expected TF-slim vgg_16.ckpt.'
                                     % (input_path, ', '.join(missing)))
  fc6_shape = shapes[names['fc6/weights']]
  if fc6_shape[0] != 7:
    raise checkpoint.CheckpointError('Checkpoint %r already has a reduced fc6 %s (expected the '
                                     'full [7, 7, 512, 4096]): use it as it is.'
                                     % (input_path, fc6_shape))
  values = {}
  for relative, name in sorted(names.items()):
    if relative.startswith('fc8/'):
      continue
    value = reader.get_tensor(name)
    if relative in checkpoint.DECIMATED_VARIABLES:
      value = checkpoint.decimate(relative, value)
    values[name] = value
  return values


def write_checkpoint(values, output_prefix):
  """Writes {name: numpy array} as a V2 checkpoint at output_prefix, atomically per file."""
  directory = os.path.dirname(os.path.abspath(output_prefix))
  os.makedirs(directory, exist_ok=True)
  temporary_prefix = '%s.tmp-%d' % (output_prefix, os.getpid())
  with tf.Graph().as_default():
    placeholders, var_list = {}, {}
    for index, (name, value) in enumerate(sorted(values.items())):
      placeholder = tf1.placeholder(tf.as_dtype(value.dtype), value.shape)
      placeholders[placeholder] = value
      var_list[name] = tf1.Variable(placeholder, name='v%d' % index)
    saver = tf1.train.Saver(var_list=var_list)
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer(), feed_dict=placeholders)
      saver.save(session, temporary_prefix, write_meta_graph=False, write_state=False)
  written = tf.io.gfile.glob(temporary_prefix + '.*')
  # The index goes last: a reader finds the checkpoint only once its data is complete.
  for temporary in sorted(written, key=lambda f: f.endswith('.index')):
    os.replace(temporary, output_prefix + temporary[len(temporary_prefix):])


def main(argv):
  del argv
  if not flags.FLAGS.input or not flags.FLAGS.output:
    raise app.UsageError('Both --input=vgg_16.ckpt and --output=vgg_16_reduced.ckpt are needed.')
  try:
    values = reduce_variables(flags.FLAGS.input, flags.FLAGS.checkpoint_model_scope)
  except checkpoint.CheckpointError as error:
    sys.exit('convert_vgg_checkpoint: %s' % error)
  write_checkpoint(values, flags.FLAGS.output)
  for name, value in sorted(values.items()):
    print('%-40s %s' % (name, list(value.shape)))
  print('Wrote %d variables to %s' % (len(values), flags.FLAGS.output))


if __name__ == '__main__':
  app.run(main)
