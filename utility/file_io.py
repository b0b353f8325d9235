"""Atomic file output: a reader sees the old file or the complete new one, never a part."""

import os
import tempfile


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
