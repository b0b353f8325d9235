"""Ground truth of a VOC split from XML, and its cache."""

import os
import pickle

import pytest

from dataset import voc
from dataset import voc_ground_truth


XML = """<annotation><filename>{id}.jpg</filename>
<size><width>500</width><height>375</height><depth>3</depth></size>
<object><name>cat</name><difficult>{difficult}</difficult>
<bndbox><xmin>{xmin}</xmin><ymin>20</ymin><xmax>300</xmax><ymax>200</ymax></bndbox></object>
</annotation>"""


def write_voc_tree(root, ids_and_objects):
  """A tiny VOC2007 tree (XML + test split) under root: {image_id: (xmin, difficult)}."""
  year = os.path.join(root, 'VOC2007')
  os.makedirs(os.path.join(year, 'Annotations'), exist_ok=True)
  os.makedirs(os.path.join(year, 'ImageSets', 'Main'), exist_ok=True)
  for image_id, (xmin, difficult) in ids_and_objects.items():
    with open(os.path.join(year, 'Annotations', image_id + '.xml'), 'w') as f:
      f.write(XML.format(id=image_id, xmin=xmin, difficult=difficult))
  with open(os.path.join(year, 'ImageSets', 'Main', 'test.txt'), 'w') as f:
    f.write(''.join(image_id + '\n' for image_id in ids_and_objects))


def test_load_ground_truth_and_cache_invalidation(tmp_path, monkeypatch):
  root, cache = str(tmp_path / 'VOCdevkit'), str(tmp_path / 'cache')
  write_voc_tree(root, {'000001': (48, 0), '000002': (10, 1)})
  calls = []
  real_parse = voc.parse_annotation
  monkeypatch.setattr(voc, 'parse_annotation', lambda p: calls.append(p) or real_parse(p))

  first = voc_ground_truth.load_ground_truth(root, 'VOC2007', 'test', cache)
  assert list(first) == ['000001', '000002'] and len(calls) == 2
  assert first['000001'].objects[0].xmin == 48.0 and first['000002'].objects[0].difficult == 1
  assert len(os.listdir(cache)) == 1
  assert voc_ground_truth.load_ground_truth(root, 'VOC2007', 'test', cache) == first
  assert len(calls) == 2                            # served from the cache

  # Same size, rewritten at once (possibly the same mtime): the content digest catches it.
  write_voc_tree(root, {'000001': (50, 0), '000002': (10, 1)})
  second = voc_ground_truth.load_ground_truth(root, 'VOC2007', 'test', cache)
  assert second['000001'].objects[0].xmin == 50.0 and len(calls) == 3
  assert voc_ground_truth.load_ground_truth(root, 'VOC2007', 'test', cache) == second

  cache_file = os.path.join(cache, os.listdir(cache)[0])
  with open(cache_file, 'wb') as f:
    f.write(b'not a pickle')                        # a broken cache is rebuilt, not trusted
  assert voc_ground_truth.load_ground_truth(root, 'VOC2007', 'test', cache) == second
  with open(cache_file, 'rb') as f:
    assert pickle.load(f)['entries']['000001'][1] == second['000001']


def test_load_ground_truth_errors(tmp_path):
  root = str(tmp_path / 'VOCdevkit')
  with pytest.raises(ValueError, match='No split file VOC2007/ImageSets/Main/test.txt under'):
    voc_ground_truth.load_ground_truth(root, 'VOC2007', 'test')
  write_voc_tree(root, {'000001': (48, 0)})
  with open(os.path.join(root, 'VOC2007', 'ImageSets', 'Main', 'test.txt'), 'a') as f:
    f.write('000777\n')
  with pytest.raises(ValueError, match=r'Annotation .*000777.xml of image 000777 \(listed in '
                                       r'split test\) does not exist'):
    voc_ground_truth.load_ground_truth(root, 'VOC2007', 'test')
