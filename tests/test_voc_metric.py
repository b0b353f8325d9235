"""The VOC metric on hand-computed cases; every expected AP is derived in the comments."""

import os

import numpy as np
import pytest

from dataset import voc
from utility import voc_metric
from utility.voc_metric import make_detections


def _gt(*objects):
  """{image_id: (boxes, difficult)} from (image_id, xmin, ymin, xmax, ymax[, difficult])."""
  grouped = {}
  for obj in objects:
    difficult = obj[5] if len(obj) > 5 else False
    grouped.setdefault(obj[0], []).append((obj[1:5], difficult))
  return {image_id: (np.array([o[0] for o in objs], float), np.array([o[1] for o in objs]))
          for image_id, objs in grouped.items()}


def _ap_both(gt_by_image, rows):
  detections = make_detections(rows)
  return (voc_metric.evaluate_class(gt_by_image, detections, metric='voc07'),
          voc_metric.evaluate_class(gt_by_image, detections, metric='area'))


# ----------------------------------------------------------------------------------------------
# voc_ap on given curves.

def test_voc_ap_eleven_point_and_area_on_a_given_curve():
  # recall    1/3  1/3  2/3  2/3
  # precision 1    1/2  2/3  1/2
  # 11-point: t = 0, .1, .2, .3 -> 1 (rec 1/3 >= .3); t = .4, .5, .6 -> max(2/3, 1/2) = 2/3;
  #   t = .7 ... 1 -> 0.  AP = (4 * 1 + 3 * 2/3) / 11 = 6/11.
  # area: envelope 1, 2/3, 2/3, 1/2 over recall steps 0->1/3 (p 1) and 1/3->2/3 (p 2/3):
  #   AP = 1/3 * 1 + 1/3 * 2/3 = 5/9.
  recall = np.array([1, 1, 2, 2]) / 3
  precision = np.array([1, 1 / 2, 2 / 3, 1 / 2])
  assert voc_metric.voc_ap(recall, precision, 'voc07') == pytest.approx(6 / 11, abs=1e-15)
  assert voc_metric.voc_ap(recall, precision, 'area') == pytest.approx(5 / 9, abs=1e-15)


def test_voc07_threshold_at_exact_recall_point():
  # Recall exactly 3/10 reaches t = 0, .1, .2, .3: AP = 4/11. np.arange(0, 1.1, 0.1) has
  # 0.30000000000000004 at index 3 and would give 3/11.
  assert voc_metric.voc_ap([3 / 10], [1.0], 'voc07') == pytest.approx(4 / 11, abs=1e-15)
  # Recall 7/10: t = 0 ... .7 -> 8/11 (arange's 0.7000000000000001 would drop t = .7).
  assert voc_metric.voc_ap([7 / 10], [1.0], 'voc07') == pytest.approx(8 / 11, abs=1e-15)


def test_voc_ap_empty_curve_is_zero_and_unknown_metric_raises():
  assert voc_metric.voc_ap([], [], 'voc07') == 0.0
  assert voc_metric.voc_ap([], [], 'area') == 0.0
  with pytest.raises(ValueError, match="Unknown AP metric 'voc12'"):
    voc_metric.voc_ap([0.5], [1.0], 'voc12')


# ----------------------------------------------------------------------------------------------
# evaluate_class.

def test_three_gts_four_detections_with_a_duplicate():
  gt = _gt(('a', 10, 10, 50, 50), ('a', 100, 100, 150, 150), ('b', 20, 20, 80, 60))
  rows = [('b', 0.6, 200, 200, 220, 220),   # 4th by score: nothing there -> FP
          ('a', 0.9, 10, 10, 50, 50),       # 1st: exact on a/g1 -> TP
          ('b', 0.7, 20, 20, 80, 60),       # 3rd: exact on b/g3 -> TP
          ('a', 0.8, 12, 12, 52, 52)]       # 2nd: IoU 0.82 with a/g1, already matched -> FP
  # TP FP TP FP -> the curve of test_voc_ap_eleven_point_and_area_on_a_given_curve.
  voc07, area = _ap_both(gt, rows)
  assert voc07['ap'] == pytest.approx(6 / 11, abs=1e-15)
  assert area['ap'] == pytest.approx(5 / 9, abs=1e-15)
  np.testing.assert_allclose(voc07['recall'], np.array([1, 1, 2, 2]) / 3)
  np.testing.assert_allclose(voc07['precision'], [1, 1 / 2, 2 / 3, 1 / 2])
  assert (voc07['num_gt'], voc07['num_detections'], voc07['num_tp']) == (3, 4, 2)


def test_difficult_gt_is_neither_tp_nor_fp_and_not_counted():
  gt = _gt(('a', 10, 10, 50, 50), ('a', 100, 100, 150, 150, True))
  rows = [('a', 0.9, 100, 100, 150, 150),   # on the difficult GT: ignored
          ('a', 0.8, 10, 10, 50, 50),       # TP
          ('a', 0.7, 300, 300, 320, 320)]   # FP
  # npos = 1. cum TP 0 1 1, cum FP 0 0 1 -> recall 0 1 1, precision 0 (0/0 guard) 1 1/2.
  # 11-point: every t reaches recall 1 with precision 1 -> AP 1. area: one step 0->1 at p 1.
  # (Counting the first as FP would give 1/2; counting the difficult GT in npos, 6/11.)
  voc07, area = _ap_both(gt, rows)
  assert voc07['ap'] == 1.0 and area['ap'] == 1.0
  assert (voc07['num_gt'], voc07['num_tp']) == (1, 1)
  np.testing.assert_array_equal(voc07['precision'], [0, 1, 0.5])


def test_second_detection_on_a_difficult_gt_is_also_ignored():
  # Difficult GTs are never marked matched, so duplicates on them stay ignored too.
  gt = _gt(('a', 10, 10, 50, 50), ('a', 100, 100, 150, 150, True))
  rows = [('a', 0.9, 100, 100, 150, 150), ('a', 0.85, 101, 101, 150, 150),
          ('a', 0.8, 10, 10, 50, 50)]
  voc07, _ = _ap_both(gt, rows)
  np.testing.assert_array_equal(voc07['precision'], [0, 0, 1])
  assert voc07['ap'] == 1.0


def test_class_without_detections_scores_zero():
  gt = _gt(('a', 10, 10, 50, 50))
  voc07, area = _ap_both(gt, [])
  assert voc07['ap'] == 0.0 and area['ap'] == 0.0
  assert (voc07['num_gt'], voc07['num_detections'], voc07['num_tp']) == (1, 0, 0)


def test_detection_in_image_without_gt_of_the_class_is_fp():
  gt = _gt(('a', 10, 10, 50, 50))          # image 'b' has no GT of this class
  rows = [('b', 0.9, 10, 10, 50, 50), ('a', 0.8, 10, 10, 50, 50)]
  # FP TP -> recall 0 1, precision 0 1/2. 11-point: 1/2 at every t; area: 1 * 1/2.
  voc07, area = _ap_both(gt, rows)
  assert voc07['ap'] == pytest.approx(0.5, abs=1e-15)
  assert area['ap'] == 0.5


def test_equal_scores_keep_file_order():
  gt = _gt(('a', 10, 10, 50, 50))
  rows = [('a', 0.5, 300, 300, 320, 320), ('a', 0.5, 10, 10, 50, 50)]
  # File order FP, TP -> precision 0 1/2 -> AP 1/2 (TP first would give 1).
  voc07, _ = _ap_both(gt, rows)
  assert voc07['ap'] == pytest.approx(0.5, abs=1e-15)


def test_plus_one_pixel_iou_convention():
  gt_box = np.array([[[1.0, 1.0, 10.0, 10.0]]])   # 10 x 10 pixels inclusive: area 100
  # [1, 1, 10, 5]: 10 x 5 = 50 -> IoU 50/100 = 0.5 exactly (continuous: 36/81 = 0.444).
  # [1, 1, 10, 5.5]: 10 x 5.5 = 55 -> 0.55 (continuous: 9 x 4.5 / 81 = 0.5 exactly).
  np.testing.assert_array_equal(
      voc_metric.devkit_iou(np.array([[1.0, 1.0, 10.0, 5.0], [1.0, 1.0, 10.0, 5.5]]),
                            np.repeat(gt_box, 2, axis=0)), [[0.5], [0.55]])
  gt = _gt(('a', 1, 1, 10, 10))
  exactly_half = voc_metric.evaluate_class(gt, make_detections([('a', 0.9, 1, 1, 10, 5)]))
  assert exactly_half['num_tp'] == 0 and exactly_half['ap'] == 0.0   # 0.5 is not > 0.5
  above_half = voc_metric.evaluate_class(gt, make_detections([('a', 0.9, 1, 1, 10, 5.5)]))
  assert above_half['num_tp'] == 1 and above_half['ap'] == 1.0       # 0.55 with +1 widths


def test_touching_boxes_overlap_by_one_pixel_row():
  # [1,1,10,10] and [10,1,19,10] share column x = 10: 1 x 10 = 10 px, union 190.
  overlaps = voc_metric.devkit_iou(np.array([[10.0, 1.0, 19.0, 10.0], [11.0, 1.0, 20.0, 10.0]]),
                                   np.array([[[1.0, 1.0, 10.0, 10.0]]] * 2))
  assert overlaps[0, 0] == 10 / 190 and overlaps[1, 0] == -np.inf


def _devkit_loop(gt_by_image, detections, threshold=0.5):
  """VOCevaldet.m's loop, transcribed literally: (tp, fp) in score order."""
  order = np.argsort(-detections.scores, kind='stable')
  matched = {i: np.zeros(len(g[0]), bool) for i, g in gt_by_image.items()}
  tp, fp = np.zeros(len(order)), np.zeros(len(order))
  for d, index in enumerate(order):
    bb = detections.boxes[index]
    boxes, difficult = gt_by_image.get(detections.image_ids[index], (np.zeros([0, 4]), []))
    ovmax, jmax = -np.inf, -1
    for j, g in enumerate(boxes):
      iw = min(bb[2], g[2]) - max(bb[0], g[0]) + 1
      ih = min(bb[3], g[3]) - max(bb[1], g[1]) + 1
      if iw > 0 and ih > 0:
        ua = ((bb[2] - bb[0] + 1) * (bb[3] - bb[1] + 1) + (g[2] - g[0] + 1) * (g[3] - g[1] + 1)
              - iw * ih)
        if iw * ih / ua > ovmax:
          ovmax, jmax = iw * ih / ua, j
    if ovmax > threshold:
      if not difficult[jmax]:
        if not matched[detections.image_ids[index]][jmax]:
          tp[d] = 1
          matched[detections.image_ids[index]][jmax] = True
        else:
          fp[d] = 1
    else:
      fp[d] = 1
  return tp, fp


def test_vectorized_matching_equals_the_devkit_loop_on_random_data():
  rng = np.random.RandomState(0)
  objects, rows = [], []
  for image in range(40):
    for _ in range(rng.randint(0, 5)):
      x, y = rng.uniform(1, 200, 2)
      objects.append(('%03d' % image, x, y, x + rng.uniform(5, 60), y + rng.uniform(5, 60),
                      rng.rand() < 0.2))
  for obj in objects * 3:                          # near-duplicates around each GT
    jitter = rng.uniform(-8, 8, 4)
    rows.append((obj[0], round(rng.rand(), 2)) + tuple(np.add(obj[1:5], jitter)))
  rows += [('%03d' % rng.randint(45), rng.rand()) + tuple(rng.uniform(1, 200, 2)) * 2
           for _ in range(50)]                       # includes images without any GT
  gt, detections = _gt(*objects), make_detections(rows)
  tp, fp = _devkit_loop(gt, detections)
  result = voc_metric.evaluate_class(gt, detections)
  npos = sum(not o[5] for o in objects)
  np.testing.assert_array_equal(result['recall'], np.cumsum(tp) / npos)
  assert result['num_tp'] == tp.sum() and 0 < tp.sum() < len(rows) - fp.sum()  # some ignored
  np.testing.assert_array_equal(
      result['precision'], np.cumsum(tp) / np.maximum(np.cumsum(tp + fp), np.finfo(float).eps))


# ----------------------------------------------------------------------------------------------
# evaluate over classes.

def _annotation(*objects):
  return voc.VocAnnotation('x.jpg', 500, 375, tuple(
      voc.VocObject(name, *box, difficult=int(difficult))
      for name, box, difficult in objects))


def _split():
  return {
      '000001': _annotation(('cat', (10, 10, 50, 50), False), ('dog', (60, 60, 90, 90), False)),
      '000002': _annotation(('dog', (1, 1, 30, 30), False), ('bird', (5, 5, 9, 9), True)),
      '000003': _annotation(),
  }


def test_evaluate_mean_leaves_out_classes_without_ground_truth():
  detections = {
      'cat': make_detections([('000001', 0.9, 10, 10, 50, 50)]),                   # AP 1
      'dog': make_detections([('000003', 0.9, 1, 1, 30, 30),                       # FP
                              ('000002', 0.8, 1, 1, 30, 30)]),                      # TP
      'bird': make_detections([('000002', 0.5, 5, 5, 9, 9)]),   # only a difficult GT -> n/a
  }
  # dog: FP TP, npos 2 -> recall 0 1/2, precision 0 1/2. 11-point: t = 0 .. .5 -> 1/2:
  #   6/11 * 1/2 = 3/11. Area: 1/2 * 1/2 = 1/4. Horse: no GT, no detections -> n/a.
  summary = voc_metric.evaluate(_split(), detections, ('cat', 'dog', 'bird', 'horse'))
  assert summary['ap'] == {'cat': 1.0, 'dog': pytest.approx(3 / 11, abs=1e-15), 'bird': None,
                           'horse': None}
  assert summary['mAP'] == pytest.approx((1 + 3 / 11) / 2, abs=1e-15)
  assert summary['metric'] == 'voc07'
  area = voc_metric.evaluate(_split(), detections, ('cat', 'dog', 'bird'), metric='area')
  assert area['ap']['dog'] == 0.25 and area['mAP'] == 0.625


def test_evaluate_rejects_unknown_images_classes_and_empty_ground_truth():
  with pytest.raises(ValueError, match="class cat name image '000009', which is not in"):
    voc_metric.evaluate(_split(), {'cat': make_detections([('000009', 0.9, 1, 1, 5, 5)])},
                        ('cat',))
  with pytest.raises(ValueError, match="class 'cow', which is not among"):
    voc_metric.evaluate(_split(), {'cow': make_detections()}, ('cat',))
  with pytest.raises(ValueError, match='None of the 1 evaluated classes has non-difficult'):
    voc_metric.evaluate(_split(), {}, ('bird',))


# ----------------------------------------------------------------------------------------------
# Result files.

def test_write_then_read_detections_round_trip(tmp_path):
  detections = {
      'cat': make_detections([('000002', 0.25, 1.5, 2.0, 30.0, 40.25),
                              ('000001', 0.875, 10.0, 20.0, 30.0, 40.0)]),
      'dog': make_detections(),
  }
  paths = voc_metric.write_detections(str(tmp_path), detections, class_names=('cat', 'dog',
                                                                              'bird'))
  assert [os.path.basename(p) for p in paths] == [
      'comp4_det_test_cat.txt', 'comp4_det_test_dog.txt', 'comp4_det_test_bird.txt']
  with open(paths[0]) as f:   # best score first, 6 decimals, boxes at 1 decimal
    assert f.read() == ('000001 0.875000 10.0 20.0 30.0 40.0\n'
                        '000002 0.250000 1.5 2.0 30.0 40.2\n')
  assert os.path.getsize(paths[1]) == 0 and os.path.getsize(paths[2]) == 0
  assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in paths)  # no temps
  back = voc_metric.read_detections(str(tmp_path), ('cat', 'dog', 'horse'))
  assert back['cat'].image_ids == ('000001', '000002')
  np.testing.assert_array_equal(back['cat'].scores, [0.875, 0.25])
  np.testing.assert_array_equal(back['cat'].boxes, [[10, 20, 30, 40], [1.5, 2, 30, 40.2]])
  assert len(back['dog'].scores) == 0 and len(back['horse'].scores) == 0  # horse: no file


def test_malformed_line_names_file_and_line(tmp_path):
  path = tmp_path / 'comp4_det_test_cat.txt'
  path.write_text('000001 0.9 1 2 3 4\n\n000002 0.8 1 2 3\n')
  with pytest.raises(ValueError, match=r'comp4_det_test_cat.txt line 3: expected'):
    voc_metric.read_detections(str(tmp_path), ('cat',))
  path.write_text('000001 nan 1 2 3 4\n')
  with pytest.raises(ValueError, match=r'comp4_det_test_cat.txt line 1: .*finite'):
    voc_metric.read_detections(str(tmp_path), ('cat',))
  with pytest.raises(ValueError, match='Detection folder .*missing does not exist'):
    voc_metric.read_detections(str(tmp_path / 'missing'), ('cat',))


def test_write_rejects_image_ids_with_spaces(tmp_path):
  with pytest.raises(ValueError, match="Image id 'a b' of class cat cannot be written"):
    voc_metric.write_detections(str(tmp_path), {'cat': make_detections([('a b', 1, 1, 1, 2, 2)])})


# ----------------------------------------------------------------------------------------------
# PR curves.

def test_save_pr_curves_writes_one_png_per_class_with_an_ap(tmp_path):
  import cv2
  results = voc_metric.evaluate_classes(
      _split(), {'cat': make_detections([('000001', 0.9, 10, 10, 50, 50)])}, ('cat', 'bird'))
  paths = voc_metric.save_pr_curves(results, str(tmp_path / 'pr'), 'voc07')
  assert [os.path.basename(p) for p in paths] == ['pr_cat.png']   # bird: n/a, no curve
  image = cv2.imread(paths[0])
  assert image.shape == (400, 480, 3)
  # The curve (precision 1 up to recall 1) runs along the top of the plot: the blue-ish
  # curve colour (BGR 200, 80, 0) sits at the top-right corner of the plot area.
  assert tuple(image[50, 400]) == (200, 80, 0)
