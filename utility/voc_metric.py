"""The Pascal VOC detection metric, exactly as the devkit computes it (numpy only, no TF).

Protocol (VOCdevkit ``VOCevaldet.m`` / ``VOCap.m``), per class:
  - detections of all images are sorted by descending score (a stable sort: equal scores keep
    their file order, as MATLAB's ``sort`` does);
  - each detection is compared with the ground truth (GT) boxes of that class in its image; the
    overlap is the devkit IoU on 1-based inclusive pixels, widths ``x2 - x1 + 1``; the best
    overlapping GT (first one on ties) is its candidate;
  - overlap > ``iou_threshold`` (0.5): a non-difficult, not yet matched GT -> true positive (TP)
    and the GT becomes matched; an already matched one -> false positive (FP, a duplicate); a
    difficult GT -> neither TP nor FP. Overlap <= threshold or no GT -> FP;
  - ``npos`` = number of non-difficult GTs; recall = cum TP / npos, precision = cum TP / cum
    (TP + FP);
  - AP: 'voc07' = mean over t in {0, 0.1, ..., 1} of max precision at recall >= t (11 points);
    'area' (VOC2010+) = area under the monotone precision envelope, summed over recall steps.

Departures from the letter of the devkit, each for a stated reason:
  - the devkit (MATLAB) accepts overlap >= 0.5; the recipe and the py-faster-rcnn port, which
    produced the published TF numbers, use > 0.5, and so do we (only an exact 0.5 differs);
  - the 11 recall thresholds are k / 10, the correctly rounded doubles: ``0:0.1:1`` in MATLAB
    and ``np.arange(0, 1.1, 0.1)`` yield 0.30000000000000004 (and 0.7000000000000001), so an
    exact recall of 3/10 would miss its own point;
  - the 11 interpolated precisions are summed with math.fsum, then divided by 11 (the devkit
    adds p / 11 eleven times): a perfect class scores exactly 1.0;
  - precision where cum (TP + FP) = 0 (only "difficult" matches so far) is 0 rather than NaN;
    MATLAB's max() skips the NaN, so the AP is the same;
  - a class with no detections has AP 0.0, a class without non-difficult GT has AP None
    ("n/a"; MATLAB would give NaN) and is left out of the mean.

Detections are kept in ``ClassDetections``: image ids, scores and boxes in devkit order
``[xmin, ymin, xmax, ymax]``, 1-based pixels (``utility.boxes.normalized_to_voc_pixels`` maps
the graph's normalized boxes there).
"""

import json
import math
import os
import typing

import numpy as np

from utility import file_io

METRICS = ('voc07', 'area')
DEFAULT_PREFIX = 'comp4_det_test_'
# Detections x GT slots per IoU chunk: bounds memory when an image holds many GTs of a class.
_IOU_CHUNK_ELEMENTS = 1 << 22


class GroundTruthObject(typing.NamedTuple):
  """One ground-truth object as the metric reads it (dataset.voc.VocObject has these fields
  too): class name, 1-based inclusive pixel box, difficult flag."""
  name: str
  xmin: float
  ymin: float
  xmax: float
  ymax: float
  difficult: int = 0


class ImageGroundTruth(typing.NamedTuple):
  """The ground truth of one image: a tuple of GroundTruthObject (or VocObject)."""
  objects: tuple


class ClassDetections(typing.NamedTuple):
  """The detections of one class over a split, in file order.

  image_ids: tuple of str [num_detections].
  scores: float64 [num_detections].
  boxes: float64 [num_detections, 4], [xmin, ymin, xmax, ymax] 1-based VOC pixels.
  """
  image_ids: tuple
  scores: np.ndarray
  boxes: np.ndarray


def make_detections(rows=()):
  """ClassDetections from rows (image_id, score, xmin, ymin, xmax, ymax); () -> empty."""
  rows = list(rows)
  values = np.array([row[1:] for row in rows], np.float64).reshape(-1, 5)
  return ClassDetections(tuple(str(row[0]) for row in rows), values[:, 0], values[:, 1:])


# ----------------------------------------------------------------------------------------------
# Devkit result files.

def detection_file_path(det_dir, class_name, prefix=DEFAULT_PREFIX):
  """'<det_dir>/comp4_det_test_<class>.txt'."""
  return os.path.join(det_dir, '%s%s.txt' % (prefix, class_name))


def _parse_detection_line(line, path, line_number):
  fields = line.split()
  try:
    if len(fields) != 6:
      raise ValueError
    values = tuple(float(v) for v in fields[1:])
    if not all(math.isfinite(v) for v in values):
      raise ValueError
  except ValueError:
    raise ValueError('%s line %d: expected "<image_id> <score> <xmin> <ymin> <xmax> <ymax>" '
                     'with finite numbers, got %r.' % (path, line_number, line.strip())) from None
  return (fields[0],) + values


def read_detection_file(path):
  """Parses one devkit result file into ClassDetections; a missing file -> no detections.

  Blank lines are skipped. Raises ValueError naming the file and line for any other line that
  is not '<image_id> <score> <xmin> <ymin> <xmax> <ymax>'.
  """
  if not os.path.exists(path):
    return make_detections()
  with open(path, encoding='utf-8') as f:
    lines = f.read().split('\n')  # '\r' of CRLF files goes with the whitespace
  fields = [f for f in (line.split() for line in lines) if f]
  if all(len(f) == 6 for f in fields):
    # Fast path: convert all numbers at once (3x faster than float() line by line).
    table = np.array(fields, dtype=object).reshape(-1, 6)
    try:
      values = table[:, 1:].astype(np.float64)
    except ValueError:
      values = None
    if values is not None and np.isfinite(values).all():
      return ClassDetections(tuple(table[:, 0].tolist()), values[:, 0], values[:, 1:])
  # Some line is malformed: parse line by line to name it.
  rows = [_parse_detection_line(line, path, number)
          for number, line in enumerate(lines, start=1) if line.strip()]
  return make_detections(rows)


def read_detections(det_dir, class_names, prefix=DEFAULT_PREFIX):
  """Reads '<det_dir>/<prefix><class>.txt' for every class.

  Returns:
    {class name: ClassDetections}, one entry per class (empty when its file is missing).

  Raises:
    ValueError: if det_dir is not a folder, or a line is malformed (naming file and line).
  """
  if not os.path.isdir(det_dir):
    raise ValueError('Detection folder %s does not exist; point it at the folder holding the '
                     '%s<class>.txt result files.' % (det_dir, prefix))
  return {name: read_detection_file(detection_file_path(det_dir, name, prefix))
          for name in class_names}


def _format_detections(detections, box_decimals):
  order = np.argsort(-np.asarray(detections.scores), kind='stable')
  line_format = '%%s %%.6f %s\n' % ' '.join(['%%.%df' % box_decimals] * 4)
  ids = [detections.image_ids[i] for i in order]
  scores = np.asarray(detections.scores, np.float64)[order].tolist()  # floats format faster
  boxes = np.asarray(detections.boxes, np.float64).reshape(-1, 4)[order].tolist()
  return ''.join(line_format % (image_id, score, *box)
                 for image_id, score, box in zip(ids, scores, boxes))


def write_detections(det_dir, detections_by_class, class_names=None, prefix=DEFAULT_PREFIX,
                     box_decimals=1):
  """Writes devkit result files atomically, one per class, best score first.

  Lines are '<image_id> <score %.6f> <xmin> <ymin> <xmax> <ymax>' with boxes at
  ``box_decimals`` (default 1, as the Caffe SSD and py-faster-rcnn writers; the rounding can
  move a box across the IoU threshold, so eval_ssd.py writes 3 to make re-scoring exact).
  Rows are sorted by descending score (stable) so that two scores which round to the same 6
  decimals keep their true order when read back.

  Args:
    det_dir: output folder (created if needed).
    detections_by_class: {class name: ClassDetections}.
    class_names: if given, every one of these classes gets a file (empty when it has no
      detections), so stale files from an earlier run are overwritten.
    prefix: file name prefix.
    box_decimals: decimals of the box coordinates.

  Returns:
    The list of paths written.

  Raises:
    ValueError: for an image id that is empty or contains whitespace.
  """
  names = list(class_names) if class_names is not None else []
  names += [name for name in detections_by_class if name not in names]
  paths = []
  for name in names:
    detections = detections_by_class.get(name, make_detections())
    bad_ids = [i for i in detections.image_ids if not i or len(i.split()) != 1 or i != i.strip()]
    if bad_ids:
      raise ValueError('Image id %r of class %s cannot be written to a result file; ids must '
                       'be non-empty without whitespace.' % (bad_ids[0], name))
    path = detection_file_path(det_dir, name, prefix)
    file_io.atomic_write(path, _format_detections(detections, box_decimals), mode='w')
    paths.append(path)
  return paths


# ----------------------------------------------------------------------------------------------
# Average precision.

def voc_ap(recall, precision, metric='voc07'):
  """Average precision from a precision/recall curve.

  Args:
    recall, precision: float arrays [num_detections], in descending-score order.
    metric: 'voc07' (11-point interpolated) or 'area' (VOC2010+ area under the envelope).

  Returns:
    The AP as a float; 0.0 for an empty curve.
  """
  recall = np.asarray(recall, np.float64)
  precision = np.asarray(precision, np.float64)
  if metric == 'voc07':
    interpolated = []
    for threshold in np.arange(11) / 10.0:  # k / 10 exactly (see module docstring)
      above = precision[recall >= threshold]
      interpolated.append(above.max() if above.size else 0.0)
    # fsum / 11 rather than the devkit's running 'ap + p / 11': a perfect curve is exactly
    # 1.0, not 1.0000000000000002; the two agree to 1e-15 otherwise.
    return math.fsum(interpolated) / 11.0
  if metric == 'area':
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # monotone (non-increasing) envelope
    steps = np.nonzero(mrec[1:] != mrec[:-1])[0] + 1
    return float(np.sum((mrec[steps] - mrec[steps - 1]) * mpre[steps]))
  raise ValueError('Unknown AP metric %r; use one of %s.' % (metric, ', '.join(METRICS)))


def devkit_iou(boxes, gt_boxes):
  """Devkit overlap of detections with candidate GTs, +1 pixel widths.

  Args:
    boxes: float64 [n, 4] [xmin, ymin, xmax, ymax] 1-based pixels.
    gt_boxes: float64 [n, g, 4], the GT slots compared with each detection.

  Returns:
    float64 [n, g]; -inf where the boxes do not intersect (the devkit skips those pairs).
  """
  b = boxes[:, None, :]
  iw = np.minimum(b[..., 2], gt_boxes[..., 2]) - np.maximum(b[..., 0], gt_boxes[..., 0]) + 1.0
  ih = np.minimum(b[..., 3], gt_boxes[..., 3]) - np.maximum(b[..., 1], gt_boxes[..., 1]) + 1.0
  intersect = (iw > 0) & (ih > 0)
  inter = iw * ih
  union = ((b[..., 2] - b[..., 0] + 1.0) * (b[..., 3] - b[..., 1] + 1.0)
           + (gt_boxes[..., 2] - gt_boxes[..., 0] + 1.0)
           * (gt_boxes[..., 3] - gt_boxes[..., 1] + 1.0) - inter)
  with np.errstate(divide='ignore', invalid='ignore'):
    return np.where(intersect, inter / np.where(intersect, union, 1.0), -np.inf)


def pad_ground_truth(gt_by_image):
  """Stacks per-image GT into padded arrays; the last row is an empty image.

  Returns:
    (row of each image id {id: row}, boxes float64 [images + 1, g, 4],
     valid bool [images + 1, g], difficult bool [images + 1, g]).
  """
  image_ids = list(gt_by_image)
  slots = max([len(gt_by_image[i][0]) for i in image_ids] + [1])
  boxes = np.zeros([len(image_ids) + 1, slots, 4])
  valid = np.zeros([len(image_ids) + 1, slots], bool)
  difficult = np.zeros([len(image_ids) + 1, slots], bool)
  for row, image_id in enumerate(image_ids):
    gt_boxes, gt_difficult = gt_by_image[image_id]
    count = len(gt_boxes)
    if count:
      boxes[row, :count] = gt_boxes
      valid[row, :count] = True
      difficult[row, :count] = gt_difficult
  return {image_id: row for row, image_id in enumerate(image_ids)}, boxes, valid, difficult


def best_overlaps(det_boxes, det_rows, gt_boxes, gt_valid):
  """(ovmax float64 [n], jmax int [n]): best GT slot of each detection's image."""
  ovmax = np.full(len(det_rows), -np.inf)
  jmax = np.zeros(len(det_rows), np.int64)
  chunk = max(1, _IOU_CHUNK_ELEMENTS // gt_boxes.shape[1])
  for start in range(0, len(det_rows), chunk):
    rows = det_rows[start:start + chunk]
    overlaps = devkit_iou(det_boxes[start:start + chunk], gt_boxes[rows])
    overlaps[~gt_valid[rows]] = -np.inf
    jmax[start:start + chunk] = np.argmax(overlaps, axis=1)  # first maximum, as the devkit
    ovmax[start:start + chunk] = overlaps[np.arange(len(rows)), jmax[start:start + chunk]]
  return ovmax, jmax


def _assign(ovmax, jmax, det_rows, gt_difficult, iou_threshold):
  """TP/FP flags [n] (float64, 0/1) in score order, the devkit's sequential matching.

  The first detection (in score order) above the threshold on a non-difficult GT is the TP for
  that GT; every later one on the same GT is a duplicate FP. That is what the devkit's loop
  with its 'already detected' flags computes, done with np.unique instead of a Python loop.
  """
  above = ovmax > iou_threshold
  on_difficult = above & gt_difficult[det_rows, jmax]
  matching = np.nonzero(above & ~on_difficult)[0]
  keys = det_rows[matching] * gt_difficult.shape[1] + jmax[matching]
  _, first = np.unique(keys, return_index=True)
  tp = np.zeros(len(ovmax))
  tp[matching[first]] = 1.0
  fp = (~on_difficult).astype(np.float64) - tp
  return tp, fp


def match_detections(gt_by_image, detections, iou_threshold=0.5):
  """The devkit's matching of one class's detections to its GTs, in score order.

  Args:
    gt_by_image: as in ``evaluate_class``.
    detections: ClassDetections of this class.
    iou_threshold: a detection must overlap a GT by more than this.

  Returns:
    dict with, per detection in descending-score order (stable): 'order' (int [n], index into
    detections), 'rows' (int [n], row of its image in pad_ground_truth; 'row_of' maps image
    ids to rows), 'overlap' (float64 [n], best overlap with a GT of its image, -inf for none),
    'slot' (int [n], that GT's index in its image), 'tp' and 'fp' (float64 0/1 [n]; both 0 for
    a detection on a difficult GT), 'image_ids' (list [n]) and 'boxes' (float64 [n, 4]).
  """
  order = np.argsort(-np.asarray(detections.scores, np.float64), kind='stable')
  row_of, gt_boxes, gt_valid, gt_difficult = pad_ground_truth(gt_by_image)
  rows = np.array([row_of.get(detections.image_ids[i], len(row_of)) for i in order], np.int64)
  det_boxes = np.asarray(detections.boxes, np.float64).reshape(-1, 4)[order]
  overlap, slot = best_overlaps(det_boxes, rows, gt_boxes, gt_valid)
  tp, fp = _assign(overlap, slot, rows, gt_difficult, iou_threshold)
  return dict(order=order, rows=rows, row_of=row_of, overlap=overlap, slot=slot, tp=tp, fp=fp,
              image_ids=[detections.image_ids[i] for i in order], boxes=det_boxes)


def count_positives(gt_by_image):
  """npos: the non-difficult GTs of one class ({image_id: (boxes, difficult)})."""
  return int(sum(np.count_nonzero(~np.asarray(d, bool)) for _, d in gt_by_image.values()))


def evaluate_class(gt_by_image, detections, iou_threshold=0.5, metric='voc07'):
  """VOC AP of one class.

  Args:
    gt_by_image: {image_id: (boxes float [n, 4] [xmin, ymin, xmax, ymax] 1-based pixels,
      difficult bool [n])}, the GTs of this class; an image absent here has no GT of it.
    detections: ClassDetections of this class.
    iou_threshold: a detection must overlap a GT by more than this.
    metric: 'voc07' or 'area'.

  Returns:
    dict(ap=float, or None when there is no non-difficult GT; precision, recall=float64
    [num_detections] in score order (empty when ap is None); num_gt=npos (non-difficult);
    num_detections; num_tp).
  """
  num_gt = count_positives(gt_by_image)
  matches = match_detections(gt_by_image, detections, iou_threshold)
  tp, fp = matches['tp'], matches['fp']
  result = dict(ap=None, precision=np.zeros(0), recall=np.zeros(0), num_gt=num_gt,
                num_detections=len(tp), num_tp=int(tp.sum()))
  if num_gt == 0:
    return result
  tp, fp = np.cumsum(tp), np.cumsum(fp)
  result['recall'] = tp / num_gt
  # Guard 0/0 where only difficult matches were seen so far (module docstring).
  result['precision'] = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
  result['ap'] = voc_ap(result['recall'], result['precision'], metric)
  return result


def ground_truth_by_class(gt_annotations, class_names):
  """Regroups annotations per class for ``evaluate_class``.

  Args:
    gt_annotations: {image_id: ImageGroundTruth or dataset.voc.VocAnnotation} (anything with
      ``.objects`` whose items have the fields of GroundTruthObject).
    class_names: classes to keep; objects of other classes are ignored.

  Returns:
    {class: {image_id: (boxes float64 [n, 4], difficult bool [n])}}, images with n > 0 only.
  """
  grouped = {name: {} for name in class_names}
  for image_id, annotation in gt_annotations.items():
    for obj in annotation.objects:
      if obj.name in grouped:
        grouped[obj.name].setdefault(image_id, []).append(
            (obj.xmin, obj.ymin, obj.xmax, obj.ymax, bool(obj.difficult)))
  return {name: {image_id: (np.array([o[:4] for o in objs], np.float64),
                            np.array([o[4] for o in objs], bool))
                 for image_id, objs in per_image.items()}
          for name, per_image in grouped.items()}


def _check_detections(gt_annotations, detections_by_class, class_names):
  unknown = sorted(set(detections_by_class) - set(class_names))
  if unknown:
    raise ValueError('Detections given for class %r, which is not among the evaluated classes; '
                     'add it to the class names or drop its detections.' % unknown[0])
  for name, detections in detections_by_class.items():
    missing = set(detections.image_ids).difference(gt_annotations)
    if missing:
      # The devkit stops with 'unrecognized image' too: wrong split or wrong ids.
      raise ValueError('Detections of class %s name image %r, which is not in the evaluated '
                       'split; evaluate on the split the detections were made for.'
                       % (name, sorted(missing)[0]))


def evaluate_classes(gt_annotations, detections_by_class, class_names, metric='voc07',
                     iou_threshold=0.5):
  """Runs ``evaluate_class`` for every class.

  Args:
    gt_annotations: {image_id: VocAnnotation} of the whole split (images without objects
      included: their detections are false positives).
    detections_by_class: {class: ClassDetections}; a missing class has no detections.
    class_names: the evaluated classes, in report order.
    metric: 'voc07' or 'area'.
    iou_threshold: overlap needed for a TP.

  Returns:
    {class: evaluate_class result} in class_names order.

  Raises:
    ValueError: for an unknown metric, detections of an unknown class, or detections naming
      an image outside gt_annotations (the devkit's 'unrecognized image').
  """
  if metric not in METRICS:
    raise ValueError('Unknown AP metric %r; use one of %s.' % (metric, ', '.join(METRICS)))
  _check_detections(gt_annotations, detections_by_class, class_names)
  gt_by_class = ground_truth_by_class(gt_annotations, class_names)
  return {name: evaluate_class(gt_by_class[name],
                               detections_by_class.get(name, make_detections()),
                               iou_threshold, metric)
          for name in class_names}


def ranked_matches(gt_annotations, detections_by_class, class_names, iou_threshold=0.5):
  """Per class, its detections in descending score order with the devkit's TP/FP flags: what a
  precision/recall curve at any score threshold is built from (net/eval_summaries.py).

  The matching is ``evaluate_class``'s: after the k-th detection the precision is
  cumsum(tp)[k] / cumsum(tp + fp)[k] and the recall cumsum(tp)[k] / num_gt.

  Args:
    gt_annotations, detections_by_class, class_names, iou_threshold: as ``evaluate_classes``.

  Returns:
    {class: dict(scores=float64 [n] descending (stable order), tp=float64 0/1 [n], fp=float64
    0/1 [n] (both 0 for a detection on a difficult GT), num_gt=int non-difficult GTs)}, in
    class_names order.

  Raises:
    ValueError: as ``evaluate_classes`` for detections of an unknown class or image.
  """
  _check_detections(gt_annotations, detections_by_class, class_names)
  gt_by_class = ground_truth_by_class(gt_annotations, class_names)
  ranked = {}
  for name in class_names:
    detections = detections_by_class.get(name, make_detections())
    matches = match_detections(gt_by_class[name], detections, iou_threshold)
    ranked[name] = dict(scores=np.asarray(detections.scores, np.float64)[matches['order']],
                        tp=matches['tp'], fp=matches['fp'],
                        num_gt=count_positives(gt_by_class[name]))
  return ranked


def summarize(results, metric):
  """The JSON contract {'mAP': float, 'ap': {class: float or None}, 'metric': metric}.

  The mean runs over classes whose AP is not None.

  Raises:
    ValueError: if no class has ground truth (nothing to average).
  """
  ap = {name: (None if r['ap'] is None else float(r['ap'])) for name, r in results.items()}
  defined = [value for value in ap.values() if value is not None]
  if not defined:
    raise ValueError('None of the %d evaluated classes has non-difficult ground truth in the '
                     'split; check the class names and the split.' % len(ap))
  return {'mAP': float(np.mean(defined)), 'ap': ap, 'metric': metric}


def format_table(results, summary):
  """Per-class lines 'class AP #GT #det' and a final mAP line."""
  width = max([len(name) for name in results] + [5])
  lines = ['%-*s  %8s  %6s  %7s' % (width, 'class', 'AP', '#GT', '#det')]
  for name, result in results.items():
    ap = 'n/a' if result['ap'] is None else '%.4f' % result['ap']
    lines.append('%-*s  %8s  %6d  %7d' % (width, name, ap, result['num_gt'],
                                         result['num_detections']))
  lines.append('%-*s  %8.4f  (%s, mean over %d classes)' % (
      width, 'mAP', summary['mAP'], summary['metric'],
      sum(ap is not None for ap in summary['ap'].values())))
  return lines


def write_summary_json(path, summary):
  """Writes the summary (mAP, ap, metric) to path as JSON, atomically; null for a None AP."""
  contract = {'mAP': summary['mAP'], 'ap': summary['ap'], 'metric': summary['metric']}
  file_io.atomic_write(path, json.dumps(contract, indent=2) + '\n', mode='w')


def evaluate(gt_annotations, detections_by_class, class_names, metric='voc07',
             iou_threshold=0.5):
  """Per-class AP and their mean: ``summarize(evaluate_classes(...))``; see both."""
  return summarize(evaluate_classes(gt_annotations, detections_by_class, class_names, metric,
                                    iou_threshold), metric)


# ----------------------------------------------------------------------------------------------
# Precision-recall curves.

def _draw_axes(cv2, image, origin, size):
  """Frame, ticks at 0, 0.2, ..., 1 and axis names on a white canvas."""
  (x0, y0), (w, h) = origin, size
  black, grey = (0, 0, 0), (220, 220, 220)
  for k in range(6):
    x, y = x0 + int(round(w * k / 5)), y0 - int(round(h * k / 5))
    cv2.line(image, (x, y0), (x, y0 - h), grey, 1)
    cv2.line(image, (x0, y), (x0 + w, y), grey, 1)
    cv2.putText(image, '%.1f' % (k / 5), (x - 10, y0 + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                black, 1, cv2.LINE_AA)
    cv2.putText(image, '%.1f' % (k / 5), (x0 - 30, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                black, 1, cv2.LINE_AA)
  cv2.rectangle(image, (x0, y0 - h), (x0 + w, y0), black, 1)
  cv2.putText(image, 'recall', (x0 + w // 2 - 20, y0 + 38), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
              black, 1, cv2.LINE_AA)
  cv2.putText(image, 'precision', (4, y0 - h - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5, black, 1,
              cv2.LINE_AA)


def draw_pr_curve(class_name, result, metric=None, size=(480, 400)):
  """A BGR uint8 [height, width, 3] plot of one class's precision-recall curve and its AP."""
  import cv2  # drawing only; the metric itself needs numpy alone
  width, height = size
  image = np.full([height, width, 3], 255, np.uint8)
  origin, plot_size = (50, height - 50), (width - 70, height - 100)
  _draw_axes(cv2, image, origin, plot_size)
  recall, precision = result['recall'], result['precision']
  if len(recall):
    xs = origin[0] + np.round(np.concatenate([[0.0], recall]) * plot_size[0])
    ys = origin[1] - np.round(np.concatenate([[precision[0]], precision]) * plot_size[1])
    points = np.stack([xs, ys], axis=1).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(image, [points], False, (200, 80, 0), 2, cv2.LINE_AA)
  ap_text = 'n/a' if result['ap'] is None else '%.4f' % result['ap']
  title = '%s  AP%s = %s  (%d GT, %d det)' % (
      class_name, ' ' + metric if metric else '', ap_text, result['num_gt'],
      result['num_detections'])
  cv2.putText(image, title, (origin[0], 22), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1,
              cv2.LINE_AA)
  return image


def save_pr_curves(results, output_dir, metric=None):
  """Writes '<output_dir>/pr_<class>.png' for every class with an AP; returns the paths."""
  import cv2
  paths = []
  for name, result in results.items():
    if result['ap'] is None:
      continue
    ok, encoded = cv2.imencode('.png', draw_pr_curve(name, result, metric))
    if not ok:
      raise ValueError('Could not encode the PR curve of class %s as PNG.' % name)
    path = os.path.join(output_dir, 'pr_%s.png' % name)
    file_io.atomic_write(path, encoded.tobytes())
    paths.append(path)
  return paths
