"""The VOC2012 test-server path: a split without annotations from the synthetic generator,
through the converter (--unannotated_splits), to eval_ssd.py's submission archive."""

import dataclasses
import glob
import gzip
import json
import os
import re
import tarfile

import cv2
import numpy as np
import pytest
import tensorflow as tf

from dataset import convert_tfrecords as convert
from dataset import make_synthetic_voc as synthetic
from net import model_spec
from tests.conftest import TINY_CLASSES, tiny_config
from tests.test_convert_tfrecords import read_records
from tests.test_eval_ssd import _eval
from utility import config
from utility import labels
from utility import voc_submission

TEST_2012 = [convert.SplitSpec('VOC2012', 'test')]
TEST_IDS = ['2012_000003', '2012_000004', '2012_000005', '2012_000006']
MEMBERS = ['results/VOC2012/Main/comp4_det_test_%s.txt' % name for name in labels.VOC_CLASSES]
# A person-layout style XML beside a test image (the real test tarball has some): not read.
LAYOUT_XML = ('<annotation><size><width>64</width><height>64</height></size><object><name>'
              'bird</name><bndbox><xmin>2</xmin><ymin>2</ymin><xmax>20</xmax><ymax>20</ymax>'
              '</bndbox></object></annotation>')


def _year_dir(voc_root, year='VOC2012'):
  return os.path.join(voc_root, 'VOCdevkit', year)


@pytest.fixture(scope='module')
def server_data(tmp_path_factory):
  """VOC2012 with 2 trainval images and a 4-image test split without annotations, converted
  into val shards (the test split alone)."""
  root = tmp_path_factory.mktemp('voc_test_server')
  voc_root, records = str(root / 'voc'), str(root / 'records')
  generated = synthetic.generate_voc(voc_root, num_trainval=0, num_test=0, seed=5,
                                     class_names=TINY_CLASSES, num_trainval_2012=2,
                                     num_test_2012=4, min_size=64, max_size=96, num_workers=1)
  with open(os.path.join(_year_dir(voc_root), 'Annotations', TEST_IDS[0] + '.xml'), 'w') as f:
    f.write(LAYOUT_XML)
  summary = convert.convert(voc_root, records, [], TEST_2012, val_shards=2, num_workers=1,
                            class_names=TINY_CLASSES, unannotated_specs=TEST_2012)
  return {'voc_root': voc_root, 'records': records, 'summary': summary,
          'generated': generated}


@pytest.fixture(scope='module')
def untrained_model(tmp_path_factory):
  """A model directory with a randomly initialised checkpoint (step 0) of tiny_config(): what
  it detects does not matter here, only the files, and it costs under a second (training one
  step costs several)."""
  model_dir = str(tmp_path_factory.mktemp('untrained_model'))
  ssd_config = tiny_config()
  config.save(ssd_config, model_dir)
  model_config = dataclasses.replace(ssd_config.model, compute_dtype='float32',
                                     data_format='NHWC')
  with tf.Graph().as_default():
    model_spec.build_network(tf.zeros([1, 160, 160, 3]), model_config, is_training=False)
    tf.compat.v1.train.get_or_create_global_step()
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      tf.compat.v1.train.Saver().save(sess, os.path.join(model_dir, 'model.ckpt'), global_step=0)
  return model_dir


# ----------------------------------------------------------------------------------------------
# Generator and converter.

def test_generator_writes_the_test_split_without_annotation_files(server_data):
  year_dir = _year_dir(server_data['voc_root'])
  with open(os.path.join(year_dir, 'ImageSets', 'Main', 'test.txt')) as f:
    assert f.read() == ''.join(i + '\n' for i in TEST_IDS)
  assert sorted(os.listdir(os.path.join(year_dir, 'JPEGImages'))) == [
      '2012_%06d.jpg' % i for i in range(1, 7)]
  # Only the trainval XML and the layout file the fixture added.
  assert sorted(os.listdir(os.path.join(year_dir, 'Annotations'))) == [
      '2012_000001.xml', '2012_000002.xml', TEST_IDS[0] + '.xml']
  assert [sample[0] for sample in server_data['generated']['VOC2012/test']] == TEST_IDS
  # The images hold objects; no file says where.
  assert all(sample[3] for sample in server_data['generated']['VOC2012/test'])


def test_an_unannotated_split_converted_as_annotated_says_which_flag_to_use(server_data):
  result = convert.load_item(server_data['voc_root'], 'VOC2012', TEST_IDS[1], TINY_CLASSES,
                             keep_empty=False)
  xml = os.path.join(_year_dir(server_data['voc_root']), 'Annotations', TEST_IDS[1] + '.xml')
  assert result.record is None
  assert result.skip_reason == (
      '%s is listed in the split file but missing on disk (a split without annotations, such '
      'as the VOC2012 test set, converts with --unannotated_splits=VOC2012:<split>).' % xml)


def test_summary_records_the_set_as_not_annotated(server_data):
  val = server_data['summary']['sets']['val']
  assert val['annotated'] is False and val['splits'] == ['VOC2012:test']
  assert (val['images_listed'], val['images_written'], val['objects'],
          val['images_without_objects']) == (4, 4, 0, 4)
  assert val['shards'] == ['val-00000-of-00002', 'val-00001-of-00002']
  with open(os.path.join(server_data['records'], convert.SUMMARY_FILENAME)) as f:
    assert json.load(f)['sets']['val']['annotated'] is False
  assert server_data['summary']['skipped'] == [] and server_data['summary']['warnings'] == []
  assert convert.format_summary(server_data['summary'])[0].startswith(
      'val (VOC2012:test, without annotations): 4 of 4 images written to 2 shards, 0 objects')


def test_records_have_no_object_and_the_jpeg_sizes(server_data):
  records = read_records(os.path.join(server_data['records'], 'val-*'))
  assert sorted(records) == [i + '.jpg' for i in TEST_IDS]
  sizes = {sample[0]: (sample[2], sample[1]) for sample in server_data['generated']['VOC2012/test']}
  for image_id in TEST_IDS:
    record = records[image_id + '.jpg']
    path = os.path.join(_year_dir(server_data['voc_root']), 'JPEGImages', image_id + '.jpg')
    with open(path, 'rb') as f:
      data = f.read()
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert (record['height'], record['width']) == decoded.shape[:2] == sizes[image_id]
    assert record['num_boxes'] == 0 and record['boxes'].shape == (0, 4)
    assert record['labels'].tolist() == [] and record['image'].shape == decoded.shape


def _tiny_tree(root, images, split_lines):
  """VOC2012 JPEGImages from {id: bytes} and ImageSets/Main/<split>.txt from {split: ids}."""
  year_dir = _year_dir(str(root))
  os.makedirs(os.path.join(year_dir, 'JPEGImages'))
  os.makedirs(os.path.join(year_dir, 'ImageSets', 'Main'))
  for image_id, data in images.items():
    with open(os.path.join(year_dir, 'JPEGImages', image_id + '.jpg'), 'wb') as f:
      f.write(data)
  for split, ids in split_lines.items():
    with open(os.path.join(year_dir, 'ImageSets', 'Main', split + '.txt'), 'w') as f:
      f.write(''.join(i + '\n' for i in ids))
  return str(root), year_dir


def test_missing_and_corrupt_images_are_skipped_naming_the_file(tmp_path):
  good = cv2.imencode('.jpg', np.full((12, 20, 3), 100, np.uint8))[1].tobytes()
  root, year_dir = _tiny_tree(tmp_path / 'voc', {'a': good, 'b': good[:100]},
                              {'test': ['a', 'b', 'c'], 'good': ['a']})
  summary = convert.convert(root, str(tmp_path / 'out'), [], TEST_2012, val_shards=1,
                            num_workers=1, unannotated_specs=TEST_2012)
  truncated = os.path.join(year_dir, 'JPEGImages', 'b.jpg')
  missing = os.path.join(year_dir, 'JPEGImages', 'c.jpg')
  assert sorted(item['reason'] for item in summary['skipped']) == sorted([
      '%s is a truncated JPEG (no end-of-image marker).' % truncated,
      '%s is listed in the split file but missing on disk.' % missing])
  assert sorted(summary['warnings']) == sorted('skipped ' + item['reason']
                                               for item in summary['skipped'])
  assert summary['sets']['val']['images_written'] == 1
  one = [convert.SplitSpec('VOC2012', 'good')]
  # Without --unannotated_splits a split without XML is what it was: every image skipped.
  with pytest.raises(convert.ConversionError,
                     match=re.escape('No image of VOC2012:good could be converted')):
    convert.convert(root, str(tmp_path / 'plain'), [], one, val_shards=1, num_workers=1)


def test_strict_names_the_corrupt_jpeg(tmp_path):
  good = cv2.imencode('.jpg', np.full((12, 20, 3), 100, np.uint8))[1].tobytes()
  root, year_dir = _tiny_tree(tmp_path / 'voc', {'a': good, 'b': b'\xff\xd8\xffnot a jpeg\xff\xd9'},
                              {'test': ['a', 'b']})
  with pytest.raises(convert.ConversionError) as error:
    convert.convert(root, str(tmp_path / 'out'), [], TEST_2012, val_shards=1, num_workers=1,
                    strict=True, unannotated_specs=TEST_2012)
  assert str(error.value) == '--strict: skipped %s cannot be decoded as an image.' % (
      os.path.join(year_dir, 'JPEGImages', 'b.jpg'))
  assert not os.path.exists(os.path.join(str(tmp_path / 'out'), 'val-00000-of-00001'))


@pytest.mark.parametrize('train, val, message', [
    ('VOC2012:test', 'VOC2007:test', '--unannotated_splits names VOC2012:test, which is in '
     '--train_splits; training needs annotations, so list it in --val_splits only.'),
    ('', 'VOC2007:test', '--unannotated_splits names VOC2012:test, which is not in '
     '--val_splits; list it there too (--val_splits=VOC2012:test).'),
    ('', 'VOC2007:test,VOC2012:test', '--val_splits mixes splits with annotations '
     '(VOC2007:test) and without (VOC2012:test); such a set can be neither scored nor '
     'submitted: convert them into separate --output_directory folders.'),
])
def test_misplaced_unannotated_split_is_a_clear_error(server_data, tmp_path, train, val,
                                                      message):
  with pytest.raises(convert.ConversionError) as error:
    convert.convert(server_data['voc_root'], str(tmp_path), convert.parse_split_specs(train, 't'),
                    convert.parse_split_specs(val, 'v'), unannotated_specs=TEST_2012)
  assert str(error.value) == message


# ----------------------------------------------------------------------------------------------
# Submission module.

def _summary_dir(tmp_path, sets):
  os.makedirs(str(tmp_path), exist_ok=True)
  for stats in sets.values():
    for shard in stats['shards']:
      (tmp_path / shard).write_bytes(b'')
  (tmp_path / voc_submission.SUMMARY_FILENAME).write_text(json.dumps({'sets': sets}))
  return str(tmp_path)


def test_the_set_is_found_from_the_matched_shards(tmp_path):
  data_dir = _summary_dir(tmp_path, {
      'train': {'annotated': True, 'shards': ['train-00000-of-00001']},
      'val': {'annotated': False, 'splits': ['VOC2012:test'], 'shards': ['val-00000-of-00001']}})
  assert voc_submission.unannotated_set(data_dir, 'val-*')[0] == 'val'
  assert voc_submission.unannotated_set(data_dir, 'train-*') is None
  with pytest.raises(ValueError) as error:
    voc_submission.unannotated_set(data_dir, '*-of-*')
  assert str(error.value) == (
      '--val_file_pattern=*-of-* matches shards of the set val, converted without annotations, '
      'and other shards; name the shards of that set alone (e.g. --val_file_pattern=val-*).')
  assert voc_submission.unannotated_set(str(tmp_path / 'elsewhere'), 'val-*') is None
  with pytest.raises(ValueError, match=re.escape('--metric=coco needs ground truth, which '
                                                 'VOC2012:test has not')):
    voc_submission.plan(data_dir, 'val-*', str(tmp_path / 'det'), 'coco')
  submission = voc_submission.plan(data_dir, 'val-*', str(tmp_path / 'det'), 'area')
  assert submission.results_dir == str(tmp_path / 'det' / 'results' / 'VOC2012' / 'Main')
  assert submission.archive_path == str(tmp_path / 'det' / 'results.tar.gz')
  assert (submission.year, submission.metric) == ('VOC2012', 'area')


def test_year_comes_from_the_flag_then_the_split_then_the_default():
  assert voc_submission.year_of({'splits': ['VOC2011:test']}) == 'VOC2011'
  assert voc_submission.year_of({'splits': ['VOC2011:test']}, 'VOC2012') == 'VOC2012'
  assert voc_submission.year_of({'splits': ['VOC2011:test', 'VOC2012:test']}) == 'VOC2012'
  assert voc_submission.year_of({}) == 'VOC2012'
  with pytest.raises(ValueError) as error:
    voc_submission.year_of({}, '../VOC2012')
  assert str(error.value) == '--submission_year=../VOC2012 must be a folder name such as VOC2012.'


def _submission(tmp_path):
  det_dir = str(tmp_path / 'det')
  results = voc_submission.results_directory(det_dir, 'VOC2012')
  return voc_submission.Submission('val', {'splits': ['VOC2012:test'], 'images_listed': 3,
                                           'images_written': 3}, 'VOC2012', results,
                                   os.path.join(det_dir, 'results.tar.gz'), 'voc07')


def test_archive_has_the_20_files_in_the_devkit_layout(tmp_path):
  submission = _submission(tmp_path)
  os.makedirs(submission.results_dir)
  for name, text in (('cat', 'x 0.500000 1.000 2.000 3.000 4.000\n'), ('dog', ''),
                     ('person', 'stale\n')):
    with open(os.path.join(submission.results_dir, 'comp4_det_test_%s.txt' % name), 'w') as f:
      f.write(text)
  path = voc_submission.write_archive(submission, ('cat', 'dog'))
  with tarfile.open(path, 'r:gz') as archive:
    assert archive.getnames() == MEMBERS
    contents = {m.name: archive.extractfile(m).read() for m in archive.getmembers()}
    assert {m.mtime for m in archive.getmembers()} == {0}
  assert contents['results/VOC2012/Main/comp4_det_test_cat.txt'] == (
      b'x 0.500000 1.000 2.000 3.000 4.000\n')
  # person is not a class of the model: its stale file is emptied, as the 17 others.
  assert [name for name, data in contents.items() if data] == [
      'results/VOC2012/Main/comp4_det_test_cat.txt']
  first = open(path, 'rb').read()
  voc_submission.write_archive(submission, ('cat', 'dog'))
  assert open(path, 'rb').read() == first and gzip.decompress(first)[:7] == b'results'
  assert [n for n in os.listdir(os.path.dirname(path)) if n.startswith('.tmp')] == []


def test_archive_errors_name_the_cause(tmp_path):
  submission = _submission(tmp_path)
  with pytest.raises(ValueError) as error:
    voc_submission.write_archive(submission, ('cat', 'unicorn'))
  assert str(error.value) == ("The VOC evaluation server scores the 20 VOC classes; the model's "
                              'classes unicorn are not VOC classes.')
  with pytest.raises(ValueError) as error:
    voc_submission.write_archive(submission, ('cat',))
  assert str(error.value) == '%s was not written by the evaluation; run eval_ssd.py again.' % (
      os.path.join(submission.results_dir, 'comp4_det_test_cat.txt'))
  with pytest.raises(ValueError) as error:
    voc_submission.check_no_ground_truth(submission, {'ap': {'cat': 0.5, 'dog': None}})
  assert str(error.value) == ('conversion_summary.json records the set val as converted '
                              'without annotations, but its records hold objects of cat; '
                              'convert the split again.')
  assert voc_submission.skipped_warning(submission) is None
  skipped = submission._replace(set_stats={'images_listed': 5, 'images_written': 3})
  assert voc_submission.skipped_warning(skipped) == (
      '2 of the 5 images of val were skipped at conversion (see conversion_summary.json); the '
      'server will find no detections for them.')


# ----------------------------------------------------------------------------------------------
# eval_ssd.py end to end.

def test_eval_writes_the_submission_and_says_no_ap(server_data, untrained_model, tmp_path):
  det_dir, json_path = str(tmp_path / 'det'), str(tmp_path / 'out.json')
  result = _eval('--data_dir=' + server_data['records'], '--model_dir=' + untrained_model,
                 '--det_dir=' + det_dir, '--json_output=' + json_path, '--batch_size=4',
                 '--max_detections_per_image=5', '--eval_images=0')
  assert result.returncode == 0, result.stderr[-3000:]
  archive_path = os.path.join(det_dir, 'results.tar.gz')
  assert result.stdout.splitlines()[-2:] == [
      os.path.join(untrained_model, 'model.ckpt-0') + ' (step 0):',
      'No AP computed because VOC2012:test has no ground truth; upload %s to the evaluation '
      'server.' % archive_path]
  assert 'mAP' not in result.stdout
  assert json.load(open(json_path)) == {'mAP': None, 'submission': archive_path,
                                        'metric': 'voc07'}
  with tarfile.open(archive_path, 'r:gz') as archive:
    assert archive.getnames() == MEMBERS
    contents = {m.name: archive.extractfile(m).read().decode() for m in archive.getmembers()}
  on_disk = sorted(glob.glob(os.path.join(det_dir, 'results', 'VOC2012', 'Main', '*.txt')))
  assert [os.path.relpath(p, det_dir) for p in on_disk] == sorted(MEMBERS)
  assert all(open(p).read() == contents[os.path.relpath(p, det_dir)] for p in on_disk)
  sizes = {s[0]: (s[1], s[2]) for s in server_data['generated']['VOC2012/test']}
  line_format = re.compile(r'^(\S+) (\d\.\d{6}) (-?\d+\.\d{3}) (-?\d+\.\d{3}) (-?\d+\.\d{3}) '
                           r'(-?\d+\.\d{3})$')
  lines = [line for text in contents.values() for line in text.splitlines()]
  assert 0 < len(lines) <= 5 * len(TEST_IDS)  # at most --max_detections_per_image per image
  for line in lines:
    image_id, score, xmin, ymin, xmax, ymax = line_format.match(line).groups()
    width, height = sizes[image_id]
    assert 0.01 < float(score) <= 1.0
    assert 1.0 <= float(xmin) < width + 1 and 0.0 < float(xmax) <= width
    assert 1.0 <= float(ymin) < height + 1 and 0.0 < float(ymax) <= height
  assert [name for name in MEMBERS if name.rsplit('_', 1)[1][:-4] not in TINY_CLASSES
          and contents[name]] == []
