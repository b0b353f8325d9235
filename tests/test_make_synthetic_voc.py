import os

import cv2
import numpy as np
import pytest

from dataset import make_synthetic_voc as synthetic
from dataset import voc
from utility import labels


def _tree_bytes(root):
  """{relative path: file bytes} of every file under root."""
  files = {}
  for folder, _, names in os.walk(root):
    for name in names:
      path = os.path.join(folder, name)
      with open(path, 'rb') as f:
        files[os.path.relpath(path, root)] = f.read()
  return files


def _generate(root, seed, num_workers=1, **kwargs):
  args = dict(num_trainval=5, num_test=3, seed=seed, num_trainval_2012=2, min_size=64,
              max_size=96, num_workers=num_workers)
  args.update(kwargs)
  return synthetic.generate_voc(str(root), **args)


def test_layout_is_exact_voc(tmp_path):
  _generate(tmp_path, seed=1)
  files = _tree_bytes(tmp_path)
  ids_2007 = ['%06d' % i for i in range(1, 9)]
  ids_2012 = ['2012_000001', '2012_000002']
  expected = {os.path.join('VOCdevkit', 'VOC2007', 'ImageSets', 'Main', 'trainval.txt'),
              os.path.join('VOCdevkit', 'VOC2007', 'ImageSets', 'Main', 'test.txt'),
              os.path.join('VOCdevkit', 'VOC2012', 'ImageSets', 'Main', 'trainval.txt')}
  for year, ids in (('VOC2007', ids_2007), ('VOC2012', ids_2012)):
    for image_id in ids:
      expected.add(os.path.join('VOCdevkit', year, 'Annotations', image_id + '.xml'))
      expected.add(os.path.join('VOCdevkit', year, 'JPEGImages', image_id + '.jpg'))
  assert set(files) == expected
  root = str(tmp_path)
  assert voc.read_split_ids(root, 'VOC2007', 'trainval') == ids_2007[:5]
  assert voc.read_split_ids(root, 'VOC2007', 'test') == ids_2007[5:]
  assert voc.read_split_ids(root, 'VOC2012', 'trainval') == ids_2012


def test_annotations_match_images_and_boxes_are_inside(tmp_path):
  results = _generate(tmp_path, seed=2)
  root = str(tmp_path)
  for key, samples in results.items():
    year = key.split('/')[0]
    for image_id, width, height, objects in samples:
      annotation = voc.parse_annotation(voc.annotation_path(root, year, image_id))
      image = cv2.imread(voc.image_path(root, year, image_id))
      assert image.shape == (height, width, 3)
      assert (annotation.width, annotation.height) == (width, height)
      assert 64 <= width <= 96 and 64 <= height <= 96
      assert annotation.filename == image_id + '.jpg'
      assert list(annotation.objects) == objects
      assert 1 <= len(objects) <= 6
      for obj in objects:
        assert 1 <= obj.xmin <= obj.xmax <= width and 1 <= obj.ymin <= obj.ymax <= height
        assert obj.xmin == int(obj.xmin) and obj.ymax == int(obj.ymax)  # integer pixels
        assert obj.name in labels.VOC_CLASSES


def test_same_seed_gives_identical_bytes_whatever_the_worker_count(tmp_path):
  # 8 images per split so that the 2-worker run really uses the process pool.
  _generate(tmp_path / 'a', seed=3, num_workers=1, num_trainval=8, num_test=0,
            num_trainval_2012=0)
  _generate(tmp_path / 'b', seed=3, num_workers=2, num_trainval=8, num_test=0,
            num_trainval_2012=0)
  _generate(tmp_path / 'c', seed=4, num_workers=1, num_trainval=8, num_test=0,
            num_trainval_2012=0)
  a, b, c = (_tree_bytes(tmp_path / name) for name in 'abc')
  assert a == b
  jpeg = os.path.join('VOCdevkit', 'VOC2007', 'JPEGImages', '000001.jpg')
  assert a[jpeg] != c[jpeg]


def test_sample_has_difficult_and_truncated_objects_inside_the_image():
  rng = np.random.default_rng(0)
  objects = []
  for _ in range(60):
    image, image_objects = synthetic.generate_image(rng, labels.VOC_CLASSES, 100, 140)
    height, width = image.shape[:2]
    assert image.dtype == np.uint8 and 100 <= min(height, width) <= max(height, width) <= 140
    for obj in image_objects:
      assert 1 <= obj.xmin <= obj.xmax <= width and 1 <= obj.ymin <= obj.ymax <= height
      # A truncated object's box is clipped at the border it crosses.
      touches = obj.xmin == 1 or obj.ymin == 1 or obj.xmax == width or obj.ymax == height
      assert touches or not obj.truncated
    objects += image_objects
  difficult = sum(obj.difficult for obj in objects) / len(objects)
  truncated = sum(obj.truncated for obj in objects) / len(objects)
  assert 0.03 < difficult < 0.2
  assert 0.03 < truncated < 0.25
  assert len({obj.name for obj in objects}) == 20


def test_box_is_the_tight_extent_of_a_lone_object():
  rng = np.random.default_rng(5)
  width, height = 120, 90
  image = np.full((height, width, 3), 100.0, np.float32)
  placements = synthetic.place_objects(rng, ('tvmonitor',), width, height, 1)
  owner, _ = synthetic.draw_objects(rng, image, placements)
  (obj,) = synthetic._annotate(rng, placements, owner, [int((owner == 0).sum())], width, height)
  ys, xs = np.nonzero(np.any(image != 100.0, axis=-1))
  assert (obj.xmin, obj.ymin, obj.xmax, obj.ymax) == (xs.min() + 1, ys.min() + 1, xs.max() + 1,
                                                      ys.max() + 1)


def test_each_class_has_a_unique_shape_and_colour():
  styles = [synthetic.CLASS_STYLES[name] for name in labels.VOC_CLASSES]
  assert len({(s.shape, s.colour) for s in styles}) == 20
  assert len(set(styles)) == 20


def test_unknown_class_and_bad_sizes_are_rejected(tmp_path):
  with pytest.raises(ValueError, match='--classes has names without a synthetic style: unicorn'):
    _generate(tmp_path, seed=0, class_names=('cat', 'unicorn'))
  with pytest.raises(ValueError, match='--min_size <= --max_size'):
    _generate(tmp_path, seed=0, min_size=90, max_size=80)


def test_class_subset_is_respected(tmp_path):
  results = _generate(tmp_path, seed=6, class_names=('cat', 'dog'))
  names = {obj.name for samples in results.values() for sample in samples for obj in sample[3]}
  assert names == {'cat', 'dog'}
  lines = synthetic.summarize(results, ('cat', 'dog'))
  assert lines[0].startswith('VOC2007/trainval        5 images')
  assert lines[-2].startswith('objects per class: cat ')
