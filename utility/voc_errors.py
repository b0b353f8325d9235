"""Where a detector's AP goes: a breakdown of its top-ranked detections and recall by size.

The VOC AP says how good a ranking is, not what is wrong with it. Following the usual
detector diagnosis (Hoiem et al., "Diagnosing Error in Object Detectors", 2012), each class's
top-ranked detections, as many as the class has non-difficult ground truth (GT) boxes (the
point where a perfect detector would have found every object), are sorted into:

  correct       overlap > iou_threshold with a not yet matched GT of the class (a TP);
  duplicate     overlap > iou_threshold with an already matched GT of the class;
  localization  overlap in [min_overlap, iou_threshold] with a GT of the class;
  confusion     otherwise, overlap >= min_overlap with a GT of another class (which one is
                counted, so the confused pairs can be listed);
  background    anything else.

Detections on a difficult GT are ignored, as in the devkit, and do not count towards the top
ranks. The same matching gives the recall per GT size (sqrt(box area) / shorter image side):
within those top ranks, and with every detection (the most the detector can reach).
Overlaps and matching are the devkit's, from ``utility.voc_metric``; numpy only.
"""

import collections

import numpy as np

from utility import voc_metric

ERROR_KINDS = ('correct', 'duplicate', 'localization', 'confusion', 'background')
SIZE_BUCKETS = (0.1, 0.2, 0.4)  # edges of sqrt(box area) / shorter image side


def _size_bucket_names(edges=SIZE_BUCKETS):
  names = ['< %.2g' % edges[0]]
  names += ['%.2g-%.2g' % (lo, hi) for lo, hi in zip(edges[:-1], edges[1:])]
  return tuple(names + ['>= %.2g' % edges[-1]])


def _relative_size(obj, annotation):
  side = min(annotation.width or 0, annotation.height or 0)
  if side <= 0:
    return float('nan')
  area = (obj.xmax - obj.xmin + 1.0) * (obj.ymax - obj.ymin + 1.0)
  return float(np.sqrt(area)) / side


def _other_class_ground_truth(gt_annotations, class_name):
  """{image_id: (boxes float64 [n, 4], names tuple [n])} of objects not of class_name."""
  others = {}
  for image_id, annotation in gt_annotations.items():
    objs = [o for o in annotation.objects if o.name != class_name]
    if objs:
      others[image_id] = (np.array([[o.xmin, o.ymin, o.xmax, o.ymax] for o in objs], np.float64),
                          tuple(o.name for o in objs))
  return others


def _best_other_overlaps(det_boxes, image_ids, others):
  """(best overlap with another class's GT [n], that class name or '' [n])."""
  padded = {i: (boxes, np.zeros(len(boxes), bool)) for i, (boxes, _) in others.items()}
  row_of, gt_boxes, gt_valid, _ = voc_metric.pad_ground_truth(padded)
  rows = np.array([row_of.get(i, len(row_of)) for i in image_ids], np.int64)
  overlap, slot = voc_metric.best_overlaps(det_boxes, rows, gt_boxes, gt_valid)
  names = [others[i][1][j] if i in others and overlap[k] > -np.inf else ''
           for k, (i, j) in enumerate(zip(image_ids, slot))]
  return overlap, names


def analyze_class(gt_annotations, detections, class_name, iou_threshold=0.5, min_overlap=0.1):
  """Error breakdown and recall by size of one class.

  Args:
    gt_annotations: {image_id: VocAnnotation} of the split (``.width``, ``.height`` and
      ``.objects`` with name, box and difficult are used).
    detections: voc_metric.ClassDetections of class_name.
    class_name: the class.
    iou_threshold: overlap a correct detection needs (above it).
    min_overlap: smallest overlap that counts as localization or confusion.

  Returns:
    dict(num_gt=int (non-difficult), top=int (detections examined), counts={kind: int},
    confused_with=Counter {other class: int}, sizes={bucket: [num_gt, found_in_top,
    found_at_all]}).
  """
  gt_by_image = voc_metric.ground_truth_by_class(gt_annotations, [class_name])[class_name]
  num_gt = int(sum(np.count_nonzero(~d) for _, d in gt_by_image.values()))
  matches = voc_metric.match_detections(gt_by_image, detections, iou_threshold)
  rows, row_of = matches['rows'], matches['row_of']
  overlap, slot = matches['overlap'], matches['slot']
  tp, fp = matches['tp'].astype(bool), matches['fp'].astype(bool)
  in_top = (np.cumsum(tp | fp) <= num_gt) & (tp | fp)
  other_overlap, other_name = _best_other_overlaps(
      matches['boxes'], matches['image_ids'],
      _other_class_ground_truth(gt_annotations, class_name))

  kinds = np.full(len(tp), 'background', dtype=object)
  kinds[fp & (other_overlap >= min_overlap)] = 'confusion'
  kinds[fp & (overlap >= min_overlap)] = 'localization'
  kinds[fp & (overlap > iou_threshold)] = 'duplicate'
  kinds[tp] = 'correct'
  counts = collections.Counter({kind: 0 for kind in ERROR_KINDS})
  counts.update(kinds[in_top].tolist())
  confused_with = collections.Counter(
      other_name[k] for k in np.nonzero(in_top & (kinds == 'confusion'))[0])

  found_in_top = {(rows[k], slot[k]) for k in np.nonzero(tp & in_top)[0]}
  found = {(rows[k], slot[k]) for k in np.nonzero(tp)[0]}
  bucket_names = _size_bucket_names()
  sizes = {name: [0, 0, 0] for name in bucket_names}
  for image_id, annotation in gt_annotations.items():
    row = row_of.get(image_id)
    objs = [o for o in annotation.objects if o.name == class_name]
    for index, obj in enumerate(objs):
      if obj.difficult:
        continue
      size = _relative_size(obj, annotation)
      if not np.isfinite(size):
        continue
      entry = sizes[bucket_names[int(np.searchsorted(SIZE_BUCKETS, size, side='right'))]]
      entry[0] += 1
      entry[1] += (row, index) in found_in_top
      entry[2] += (row, index) in found
  return dict(num_gt=num_gt, top=int(in_top.sum()), counts=dict(counts),
              confused_with=confused_with, sizes=sizes)


def analyze(gt_annotations, detections_by_class, class_names, iou_threshold=0.5,
            min_overlap=0.1):
  """``analyze_class`` for every class: {class: result}."""
  return {name: analyze_class(gt_annotations,
                              detections_by_class.get(name, voc_metric.make_detections()),
                              name, iou_threshold, min_overlap)
          for name in class_names}


def format_report(results, num_pairs=10):
  """Table lines: kinds per class and in total, the most confused pairs, recall by size."""
  width = max([len(name) for name in results] + [5])
  lines = ['Top-ranked detections (as many per class as its GT), by kind:',
           '%-*s  %5s  ' % (width, 'class', '#top') + '  '.join('%12s' % k for k in ERROR_KINDS)]
  total = collections.Counter()
  pairs = collections.Counter()
  for name, result in results.items():
    total.update(result['counts'])
    total['#top'] += result['top']
    pairs.update({(name, other): n for other, n in result['confused_with'].items()})
    lines.append('%-*s  %5d  ' % (width, name, result['top'])
                 + '  '.join('%12d' % result['counts'][k] for k in ERROR_KINDS))
  lines.append('%-*s  %5d  ' % (width, 'all', total['#top'])
               + '  '.join('%12d' % total[k] for k in ERROR_KINDS))
  if pairs:
    lines.append('Most confused (detected as -> object of class): ' + ', '.join(
        '%s -> %s %d' % (a, b, n) for (a, b), n in pairs.most_common(num_pairs)))
  lines.append('Recall by GT size (sqrt(area) / shorter image side): in the top ranks / with '
               'all detections')
  sizes = collections.OrderedDict((name, [0, 0, 0]) for name in _size_bucket_names())
  for result in results.values():
    for name, (n, top, found) in result['sizes'].items():
      sizes[name][0] += n
      sizes[name][1] += top
      sizes[name][2] += found
  for name, (n, top, found) in sizes.items():
    if n:
      lines.append('  %-9s  %5d GT  %.3f / %.3f' % (name, n, top / n, found / n))
  return lines
