"""Ground truth of a VOC split for the evaluator, through a cache that is never stale.

numpy/stdlib only (no TF), like utility/voc_metric.py, which evaluates what this returns.
"""

import hashlib
import os
import pickle

from dataset import voc
from utility import file_io

_CACHE_VERSION = 1



def _file_digest(data):
  return hashlib.blake2b(data, digest_size=16).hexdigest()


def _parser_digest():
  """Digest of dataset/voc.py: a change to the parser invalidates every cached annotation."""
  with open(voc.__file__, 'rb') as f:
    return _file_digest(f.read())


def _cache_path(cache_dir, voc_root, year_folder, split):
  root_key = _file_digest(os.path.abspath(voc_root).encode('utf-8'))[:12]
  return os.path.join(cache_dir, 'voc_gt_%s_%s_%s.pkl' % (year_folder, split, root_key))


def _load_cache(path):
  """The cached {image_id: (digest, annotation)}, or {} if absent, unreadable or outdated."""
  try:
    with open(path, 'rb') as f:
      cache = pickle.load(f)
    if cache['version'] == _CACHE_VERSION and cache['parser'] == _parser_digest():
      return cache['entries']
  except Exception:  # pylint: disable=broad-except  # any unusable cache is rebuilt
    pass
  return {}


def _split_ids(voc_root, year_folder, split):
  try:
    return voc.read_split_ids(voc_root, year_folder, split)
  except voc.DatasetLayoutError:
    raise ValueError(
        'No split file %s/ImageSets/Main/%s.txt under the VOC root %s (nor under %s/VOCdevkit); '
        'check the VOC root, the year and the split name.'
        % (year_folder, split, voc_root, voc_root)) from None


def _read_annotation_bytes(voc_root, year_folder, image_id, split):
  path = voc.annotation_path(voc_root, year_folder, image_id)
  try:
    with open(path, 'rb') as f:
      return path, f.read()
  except FileNotFoundError:
    raise ValueError('Annotation %s of image %s (listed in split %s) does not exist; restore it '
                     'or remove the id from the split file.' % (path, image_id, split)) from None


def load_ground_truth(voc_root, year_folder, split, cache_dir=None):
  """Parses the annotations of a split, optionally through a cache.

  The cache (a pickle in cache_dir, one per VOC root, year and split, written atomically)
  stores each file's content digest with its parsed annotation. Every call re-reads each XML
  file and re-parses those whose digest changed: content digests, unlike size + mtime, cannot
  miss an edit made within the file system's timestamp granularity. A changed parser
  (dataset/voc.py) discards the whole cache.

  Args:
    voc_root: the VOCdevkit folder or its parent.
    year_folder: e.g. 'VOC2007'.
    split: e.g. 'test' (reads ImageSets/Main/<split>.txt).
    cache_dir: folder for the cache; None or '' disables it.

  Returns:
    {image_id: dataset.voc.VocAnnotation} in split-file order.

  Raises:
    ValueError: for a missing split file or annotation, or an unparseable annotation.
  """
  image_ids = _split_ids(voc_root, year_folder, split)
  cache_path = _cache_path(cache_dir, voc_root, year_folder, split) if cache_dir else None
  cached = _load_cache(cache_path) if cache_path else {}
  entries, changed = {}, False
  for image_id in image_ids:
    path, data = _read_annotation_bytes(voc_root, year_folder, image_id, split)
    digest = _file_digest(data)
    if image_id in cached and cached[image_id][0] == digest:
      entries[image_id] = cached[image_id]
    else:
      entries[image_id] = (digest, voc.parse_annotation(path))
      changed = True
  if cache_path and (changed or set(cached) != set(entries)):
    payload = {'version': _CACHE_VERSION, 'parser': _parser_digest(), 'entries': entries}
    file_io.atomic_write(cache_path, pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
  return {image_id: entry[1] for image_id, entry in entries.items()}
