"""Atomic file output (a reader sees the old file or the complete new one, never a part), and
the reader of the converter's record, <data_dir>/conversion_summary.json."""

import json
import os
import tempfile

# Written by dataset/convert_tfrecords.py next to the shards (its public contract:
# docs/TFRECORD_FORMAT.md); read by the flags (class names, category ids) and eval_ssd.py
# (sets converted without annotations).
CONVERSION_SUMMARY = 'conversion_summary.json'


def atomic_write(path, data, mode='wb'):
  """Writes data to path through a temporary file in the same folder and os.replace.

  Args:
    path: destination file; its folder is created if needed.
    data: bytes (mode 'wb') or str (mode 'w', UTF-8).
    mode: 'wb' or 'w'.
  """
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp_path = tempfile.mkstemp(dir=directory, prefix='.tmp-' + os.path.basename(path))
  try:
    kwargs = {'encoding': 'utf-8'} if 'b' not in mode else {}
    with os.fdopen(fd, mode, **kwargs) as f:
      f.write(data)
    os.replace(tmp_path, path)
  except BaseException:
    if os.path.exists(tmp_path):
      os.remove(tmp_path)
    raise


def read_conversion_summary(data_dir):
  """The converter's summary dict of data_dir, or {} when there is none (or no data_dir).

  Raises:
    ValueError: naming the file when it is not valid JSON.
  """
  path = os.path.join(data_dir or '', CONVERSION_SUMMARY)
  if not data_dir or not os.path.isfile(path):
    return {}
  try:
    with open(path, encoding='utf-8') as f:
      return json.load(f)
  except ValueError:
    raise ValueError('%s is not valid JSON; convert the records again with '
                     'dataset/convert_tfrecords.py.' % path) from None
