"""Error breakdown of top-ranked detections, on a hand-made split."""

from dataset import voc
from utility import voc_errors
from utility import voc_metric


def _split():
  obj = voc.VocObject
  return {
      'a': voc.VocAnnotation('a.jpg', 100, 100, (
          obj('cat', 11, 11, 50, 50), obj('dog', 61, 61, 80, 80),
          obj('cat', 81, 1, 100, 20, difficult=1))),
      'b': voc.VocAnnotation('b.jpg', 200, 100, (obj('cat', 1, 1, 10, 10),)),
      'c': voc.VocAnnotation('c.jpg', 100, 100, (
          obj('cat', 1, 1, 5, 5), obj('cat', 21, 21, 25, 25), obj('cat', 41, 41, 45, 45))),
  }


CAT_DETECTIONS = voc_metric.make_detections([
    ('a', 0.9, 11, 11, 50, 50),     # correct
    ('a', 0.8, 12, 12, 50, 50),     # duplicate of the one above (IoU 0.95)
    ('a', 0.7, 61, 61, 80, 80),     # on the dog: confusion
    ('a', 0.6, 81, 1, 100, 20),     # on the difficult cat: ignored, not counted
    ('a', 0.5, 11, 11, 30, 50),     # IoU exactly 0.5 with the cat: localization
    ('b', 0.4, 150, 50, 190, 90),   # nothing there: background (5th counted = npos)
    ('b', 0.3, 1, 1, 10, 10),       # correct, below the top 5
    ('c', 0.2, 1, 1, 5, 5),         # correct, below the top 5
])


def test_each_kind_is_found_once_in_the_top_ranks():
  result = voc_errors.analyze_class(_split(), CAT_DETECTIONS, 'cat')
  assert result['num_gt'] == 5 and result['top'] == 5
  assert result['counts'] == {'correct': 1, 'duplicate': 1, 'localization': 1,
                              'confusion': 1, 'background': 1}
  assert dict(result['confused_with']) == {'dog': 1}
  # sqrt(area) / shorter side: 0.4 (a), 0.1 (b: 10 px of 100), 0.05 (the three in c).
  assert result['sizes'] == {'< 0.1': [3, 0, 1], '0.1-0.2': [1, 0, 1], '0.2-0.4': [0, 0, 0],
                             '>= 0.4': [1, 1, 1]}


def test_a_class_without_detections_found_nothing():
  result = voc_errors.analyze_class(_split(), voc_metric.make_detections(), 'dog')
  assert result['num_gt'] == 1 and result['top'] == 0
  assert result['counts'] == dict.fromkeys(voc_errors.ERROR_KINDS, 0)
  assert result['sizes']['0.2-0.4'] == [1, 0, 0]


def test_report_totals_kinds_pairs_and_sizes():
  results = voc_errors.analyze(_split(), {'cat': CAT_DETECTIONS}, ['cat', 'dog'])
  lines = voc_errors.format_report(results)
  assert lines[2].split() == ['cat', '5', '1', '1', '1', '1', '1']
  assert lines[3].split() == ['dog', '0', '0', '0', '0', '0', '0']
  assert lines[4].split() == ['all', '5', '1', '1', '1', '1', '1']
  assert lines[5] == 'Most confused (detected as -> object of class): cat -> dog 1'
  assert lines[-4:] == ['  < 0.1          3 GT  0.000 / 0.333',
                        '  0.1-0.2        1 GT  0.000 / 1.000',
                        '  0.2-0.4        1 GT  0.000 / 0.000',
                        '  >= 0.4         1 GT  1.000 / 1.000']
