r"""Counts what a set of TFRecord shards holds.

    python dataset/inspect_tfrecords.py --pattern='DIR/train-*'

prints the number of files and records, objects per class (by label_text), difficult and
truncated counts, and the range of image sizes. Records are read with tf.data when eager (the
command line) or tf.compat.v1.io.tf_record_iterator in graph mode, and parsed as tf.train.Example
protos in Python: no session is needed.
"""

import collections
import glob
import os
import sys

if not __package__:
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf
from absl import app
from absl import flags


def _records(path):
  """Serialized records of one file (tf.data when eager, the v1 iterator in graph mode)."""
  if tf.executing_eagerly():
    for record in tf.data.TFRecordDataset(path):
      yield record.numpy()
  else:
    yield from tf.compat.v1.io.tf_record_iterator(path)


def _values(feature_map, key, kind):
  if key not in feature_map:
    return []
  return list(getattr(feature_map[key], kind).value)


def inspect_shards(pattern):
  """Counts records and objects in the files matching a glob pattern.

  Args:
    pattern: glob pattern, e.g. 'DIR/train-*'.

  Returns:
    A dict: 'files' (sorted paths), 'records', 'objects', 'objects_per_class' {label_text: count}
    (sorted by name), 'labels_per_class' {label_text: sorted label ids seen}, 'difficult',
    'truncated', 'images_without_objects', 'min_height', 'max_height', 'min_width',
    'max_width' (None when there is no record).

  Raises:
    ValueError: if the pattern matches no file.
  """
  files = sorted(glob.glob(pattern))
  if not files:
    raise ValueError('--pattern %r matches no file; check the folder and quote the pattern.'
                     % pattern)
  per_class = collections.Counter()
  labels = collections.defaultdict(set)
  counts = collections.Counter()
  heights, widths = [], []
  for path in files:
    for record in _records(path):
      feature_map = tf.train.Example.FromString(record).features.feature
      names = [t.decode('utf-8') for t in _values(feature_map, 'image/object/bbox/label_text',
                                                    'bytes_list')]
      for name, label in zip(names, _values(feature_map, 'image/object/bbox/label',
                                            'int64_list')):
        labels[name].add(label)
      per_class.update(names)
      counts['records'] += 1
      counts['objects'] += len(names)
      counts['images_without_objects'] += int(not names)
      counts['difficult'] += sum(_values(feature_map, 'image/object/bbox/difficult', 'int64_list'))
      counts['truncated'] += sum(_values(feature_map, 'image/object/bbox/truncated', 'int64_list'))
      heights += _values(feature_map, 'image/height', 'int64_list')
      widths += _values(feature_map, 'image/width', 'int64_list')
  return {
      'files': files,
      'records': counts['records'],
      'objects': counts['objects'],
      'objects_per_class': dict(sorted(per_class.items())),
      'labels_per_class': {name: sorted(ids) for name, ids in sorted(labels.items())},
      'difficult': counts['difficult'],
      'truncated': counts['truncated'],
      'images_without_objects': counts['images_without_objects'],
      'min_height': min(heights, default=None), 'max_height': max(heights, default=None),
      'min_width': min(widths, default=None), 'max_width': max(widths, default=None),
  }


def format_report(report):
  """Printable lines of an ``inspect_shards`` result."""
  lines = ['%d files, %d records, %d objects (%d difficult, %d truncated), %d images without '
           'objects' % (len(report['files']), report['records'], report['objects'],
                        report['difficult'], report['truncated'],
                        report['images_without_objects'])]
  if report['records']:
    lines.append('image height %d..%d, width %d..%d' % (
        report['min_height'], report['max_height'], report['min_width'], report['max_width']))
  for name, count in report['objects_per_class'].items():
    lines.append('  %-12s label %-6s %6d' % (
        name, ','.join(str(i) for i in report['labels_per_class'][name]), count))
  return lines


FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string('pattern', None, "Glob of the shards, e.g. 'DIR/train-*'.")
  flags.mark_flag_as_required('pattern')


def main(argv):
  del argv
  try:
    report = inspect_shards(FLAGS.pattern)
  except ValueError as e:
    sys.exit('Error: %s' % e)
  print('\n'.join(format_report(report)))


if __name__ == '__main__':
  define_flags()
  app.run(main)
