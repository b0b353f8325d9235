import json
import os
import subprocess
import sys

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


# ----------------------------------------------------------------------------------------------
# COCO format.

COCO_CLASSES = ('cat', 'dog', 'car', 'bus')


def _generate_coco(root, seed, num_workers=1, **kwargs):
  args = dict(num_trainval=6, num_test=3, seed=seed, class_names=COCO_CLASSES, min_size=64,
              max_size=96, num_workers=num_workers)
  args.update(kwargs)
  return synthetic.generate_coco(str(root), **args)


def _generate_matching_voc(root, seed, **kwargs):
  """The VOC tree generate_coco's defaults above correspond to (VOC2007 only)."""
  args = dict(num_trainval=6, num_test=3, seed=seed, class_names=COCO_CLASSES, min_size=64,
              max_size=96, num_workers=1, num_trainval_2012=0)
  args.update(kwargs)
  return synthetic.generate_voc(str(root), **args)


def _load_json(root, split):
  """The parsed instances_<split>.json under root/coco/annotations."""
  path = os.path.join(str(root), 'coco', 'annotations', 'instances_%s.json' % split)
  with open(path, encoding='utf-8') as f:
    return json.load(f)


def _annotations_by_image(instances):
  """{image id: that image's annotations in id order}."""
  by_image = {image['id']: [] for image in instances['images']}
  for annotation in sorted(instances['annotations'], key=lambda a: a['id']):
    by_image[annotation['image_id']].append(annotation)
  return by_image


def test_coco_category_ids_are_odd_and_not_contiguous():
  assert [synthetic.coco_category_id(i) for i in range(5)] == [1, 3, 5, 7, 9]
  assert synthetic.coco_categories(('cat', 'dog')) == [
      {'id': 1, 'name': 'cat', 'supercategory': 'synthetic'},
      {'id': 3, 'name': 'dog', 'supercategory': 'synthetic'}]


def test_coco_annotation_converts_the_voc_box():
  obj = voc.VocObject('dog', 3.0, 5.0, 12.0, 7.0, difficult=1, truncated=0)
  assert synthetic.coco_annotation(4, 9, 3, obj, 17) == {
      'id': 4, 'image_id': 9, 'category_id': 3, 'bbox': [2.0, 4.0, 10.0, 3.0], 'area': 17.0,
      'iscrowd': 1, 'segmentation': [[2.0, 4.0, 12.0, 4.0, 12.0, 7.0, 2.0, 7.0]]}
  assert synthetic.coco_annotation(1, 1, 1, obj._replace(difficult=0), 5)['iscrowd'] == 0


def test_visible_pixel_counts_follow_the_annotated_objects():
  owner = np.array([[0, 0, 0, -1],
                    [3, 3, -1, -1]], np.int32)  # placements 1 and 2 entirely hidden
  assert synthetic.visible_pixel_counts(owner, 4) == [3, 2]
  # render_image draws exactly what generate_image draws and counts one area per object.
  image, objects = synthetic.generate_image(np.random.default_rng(11), COCO_CLASSES, 64, 96)
  image2, objects2, areas = synthetic.render_image(np.random.default_rng(11), COCO_CLASSES, 64,
                                                   96)
  assert np.array_equal(image, image2) and objects == objects2
  assert len(areas) == len(objects)
  for obj, area in zip(objects, areas):
    assert 0 < area <= (obj.xmax - obj.xmin + 1) * (obj.ymax - obj.ymin + 1)


def test_coco_layout_and_summary(tmp_path):
  results = _generate_coco(tmp_path, seed=0)
  files = set(_tree_bytes(tmp_path))
  expected = {os.path.join('coco', 'annotations', 'instances_train.json'),
              os.path.join('coco', 'annotations', 'instances_val.json')}
  expected |= {os.path.join('coco', 'images', 'train', '%06d.jpg' % i) for i in range(1, 7)}
  expected |= {os.path.join('coco', 'images', 'val', '%06d.jpg' % i) for i in range(7, 10)}
  assert files == expected
  assert sorted(results) == ['coco/train', 'coco/val']
  assert [sample[0] for sample in results['coco/train']] == ['%06d' % i for i in range(1, 7)]
  assert [sample[0] for sample in results['coco/val']] == ['000007', '000008', '000009']
  assert all(len(sample) == 4 for samples in results.values() for sample in samples)
  summary = synthetic.summarize(results, COCO_CLASSES)
  assert summary[0].startswith('coco/train              6 images')


def test_coco_boxes_match_voc_object_for_object(tmp_path):
  _generate_coco(tmp_path / 'coco_out', seed=0)
  _generate_matching_voc(tmp_path / 'voc_out', seed=0)
  voc_root = str(tmp_path / 'voc_out')
  category_of = {name: 2 * i + 1 for i, name in enumerate(COCO_CLASSES)}
  annotation_ids = []
  num_objects = num_crowd = 0
  for split, numbers in (('train', range(1, 7)), ('val', range(7, 10))):
    instances = _load_json(tmp_path / 'coco_out', split)
    assert instances['licenses'] == [] and isinstance(instances['info'], dict)
    assert instances['categories'] == [
        {'id': category_of[name], 'name': name, 'supercategory': 'synthetic'}
        for name in COCO_CLASSES]
    assert [image['id'] for image in instances['images']] == list(numbers)
    by_image = _annotations_by_image(instances)
    for image in instances['images']:
      image_id = '%06d' % image['id']
      assert image['file_name'] == image_id + '.jpg'
      jpeg = cv2.imread(os.path.join(str(tmp_path / 'coco_out'), 'coco', 'images', split,
                                     image['file_name']))
      assert jpeg.shape == (image['height'], image['width'], 3)
      annotation = voc.parse_annotation(voc.annotation_path(voc_root, 'VOC2007', image_id))
      assert (annotation.width, annotation.height) == (image['width'], image['height'])
      annotations = by_image[image['id']]
      assert len(annotations) == len(annotation.objects) >= 1
      for obj, ann in zip(annotation.objects, annotations):
        x, y, w, h = (obj.xmin - 1, obj.ymin - 1, obj.xmax - obj.xmin + 1, obj.ymax - obj.ymin + 1)
        assert ann['bbox'] == [x, y, w, h]
        assert all(isinstance(v, float) for v in ann['bbox'])
        assert ann['segmentation'] == [[x, y, x + w, y, x + w, y + h, x, y + h]]
        assert ann['category_id'] == category_of[obj.name]
        assert ann['iscrowd'] == obj.difficult
        assert 0 < ann['area'] <= w * h
        assert x + w <= image['width'] and y + h <= image['height']
        annotation_ids.append(ann['id'])
        num_objects += 1
        num_crowd += ann['iscrowd']
  assert annotation_ids == list(range(1, num_objects + 1))  # unique across both files
  assert num_objects > 9 and num_crowd >= 1  # the comparison covers difficult objects too


def test_coco_images_are_the_voc_jpeg_bytes(tmp_path):
  _generate_coco(tmp_path / 'coco_out', seed=4)
  _generate_matching_voc(tmp_path / 'voc_out', seed=4)
  coco_files = _tree_bytes(tmp_path / 'coco_out')
  voc_files = _tree_bytes(tmp_path / 'voc_out')
  for number in range(1, 10):
    split = 'train' if number <= 6 else 'val'
    name = '%06d.jpg' % number
    assert (coco_files[os.path.join('coco', 'images', split, name)]
            == voc_files[os.path.join('VOCdevkit', 'VOC2007', 'JPEGImages', name)])


def test_pycocotools_loads_the_coco_files(tmp_path):
  from pycocotools.coco import COCO
  results = _generate_coco(tmp_path, seed=1)
  for split, numbers in (('train', list(range(1, 7))), ('val', [7, 8, 9])):
    coco = COCO(os.path.join(str(tmp_path), 'coco', 'annotations', 'instances_%s.json' % split))
    num_objects = sum(len(sample[3]) for sample in results['coco/' + split])
    assert coco.getCatIds() == [1, 3, 5, 7]
    assert [cat['name'] for cat in coco.loadCats(coco.getCatIds())] == list(COCO_CLASSES)
    assert coco.getImgIds() == numbers
    assert len(coco.getAnnIds()) == num_objects
    crowd = sum(obj.difficult for sample in results['coco/' + split] for obj in sample[3])
    assert len(coco.getAnnIds(iscrowd=True)) == crowd
    dog_objects = sum(obj.name == 'dog' for sample in results['coco/' + split]
                      for obj in sample[3])
    assert len(coco.getAnnIds(catIds=[3])) == dog_objects


def test_coco_same_seed_gives_identical_bytes_whatever_the_worker_count(tmp_path):
  # 8 images in train so that the 2-worker run really uses the process pool.
  _generate_coco(tmp_path / 'a', seed=3, num_workers=1, num_trainval=8, num_test=2)
  _generate_coco(tmp_path / 'b', seed=3, num_workers=2, num_trainval=8, num_test=2)
  _generate_coco(tmp_path / 'c', seed=5, num_workers=1, num_trainval=8, num_test=2)
  a, b, c = (_tree_bytes(tmp_path / name) for name in 'abc')
  assert a == b
  for split in ('train', 'val'):
    path = os.path.join('coco', 'annotations', 'instances_%s.json' % split)
    assert a[path] != c[path]
    # Canonical form: sorted keys, compact separators, one trailing newline.
    text = a[path].decode('ascii')
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(',', ':')) + '\n'
    assert text.startswith('{"annotations":[{"area":')


def test_coco_rejects_bad_options(tmp_path):
  with pytest.raises(ValueError, match='--classes has names without a synthetic style: unicorn'):
    _generate_coco(tmp_path, seed=0, class_names=('cat', 'unicorn'))
  with pytest.raises(ValueError, match='--min_size <= --max_size'):
    _generate_coco(tmp_path, seed=0, min_size=90, max_size=80)


def _run_script(*args):
  """Runs dataset/make_synthetic_voc.py with args; returns the CompletedProcess."""
  script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'dataset',
                        'make_synthetic_voc.py')
  return subprocess.run([sys.executable, script] + list(args), capture_output=True, text=True,
                        timeout=60)


def test_command_line_format_flag(tmp_path):
  common = ['--num_trainval=2', '--num_test=1', '--seed=2', '--min_size=64', '--max_size=64',
            '--classes=cat,dog']
  coco = _run_script('--format=coco', '--output_dir=%s' % (tmp_path / 'coco_out'), *common)
  assert coco.returncode == 0, coco.stderr
  assert 'Wrote %s' % (tmp_path / 'coco_out' / 'coco') in coco.stdout
  assert sorted(_tree_bytes(tmp_path / 'coco_out')) == sorted(
      [os.path.join('coco', 'annotations', 'instances_train.json'),
       os.path.join('coco', 'annotations', 'instances_val.json'),
       os.path.join('coco', 'images', 'train', '000001.jpg'),
       os.path.join('coco', 'images', 'train', '000002.jpg'),
       os.path.join('coco', 'images', 'val', '000003.jpg')])
  default = _run_script('--output_dir=%s' % (tmp_path / 'voc_out'), *common)  # --format=voc
  assert default.returncode == 0, default.stderr
  assert os.listdir(str(tmp_path / 'voc_out')) == ['VOCdevkit']
  both = _run_script('--format=coco', '--with_voc2012', '--output_dir=%s' % tmp_path, *common)
  assert both.returncode != 0
  assert '--with_voc2012 applies to --format=voc only' in both.stderr
